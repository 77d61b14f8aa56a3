//! Strict query-string parsing: unknown or repeated parameters and bad
//! values are a 400 naming the parameter.

use std::collections::HashMap;

use neonhub_events::Timestamp;

use super::errors::ApiError;
use crate::config::parse_time;

/// The parameters of one request, each taken at most once.
#[derive(Debug)]
pub(crate) struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Parses `query`, refusing parameters not in `allowed`.
    pub(crate) fn parse(query: &str, allowed: &[&str]) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|e| ApiError::invalid("query string", e))?;
        let mut values = HashMap::new();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::invalid(
                    &name,
                    format!("unknown parameter; this route takes {}", allowed.join(", ")),
                ));
            }
            if values.insert(name.clone(), value).is_some() {
                return Err(ApiError::invalid(&name, "given more than once"));
            }
        }
        Ok(Self { values })
    }

    /// A parameter's text; empty counts as absent.
    pub(crate) fn string(&mut self, name: &str) -> Option<String> {
        self.values.remove(name).filter(|v| !v.is_empty())
    }

    pub(crate) fn u64(&mut self, name: &str) -> Result<Option<u64>, ApiError> {
        self.string(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::invalid(name, format!("{v:?} is not a whole number")))
            })
            .transpose()
    }

    pub(crate) fn bool(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        self.string(name)
            .map(|v| match v.as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(ApiError::invalid(
                    name,
                    format!("{v:?} is not true or false"),
                )),
            })
            .transpose()
    }

    pub(crate) fn time(&mut self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        self.string(name)
            .map(|v| parse_time(&v).map_err(|e| ApiError::invalid(name, e)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_repeated_and_bad_parameters_are_named() {
        let err = Params::parse("agnet=x", &["agent"]).unwrap_err();
        assert!(err.to_string().contains("agnet"), "{err}");
        let err = Params::parse("agent=a&agent=b", &["agent"]).unwrap_err();
        assert!(err.to_string().contains("more than once"), "{err}");
        let mut p = Params::parse(
            "limit=ten&wait=maybe&since=soon",
            &["limit", "wait", "since"],
        )
        .unwrap();
        assert!(p.u64("limit").unwrap_err().to_string().contains("limit"));
        assert!(p.bool("wait").unwrap_err().to_string().contains("wait"));
        assert!(p.time("since").unwrap_err().to_string().contains("since"));
        let mut p = Params::parse("limit=&agent=echo", &["limit", "agent"]).unwrap();
        assert_eq!(p.u64("limit").unwrap(), None);
        assert_eq!(p.string("agent").as_deref(), Some("echo"));
    }
}
