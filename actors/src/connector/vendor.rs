//! Vendors' own error codes, typed: Slack's `ok: false` errors, Twilio's
//! numeric codes and language-model APIs' error types, each saying whether trying again can help ([`Retry`]).
//! A [`ConnectorError`] carries the one its vendor answered
//! ([`ConnectorError::vendor`]).

use std::fmt;

use serde_json::Value;

use super::ConnectorError;

/// Whether trying a failed request again can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Retry {
    /// No: the request, the credentials, the recipient or the account must
    /// change first.
    Never,
    /// Yes, later: the vendor did not act on the request (rate limited,
    /// unavailable for a while), so sending it again cannot duplicate it.
    Later,
    /// Perhaps: the vendor failed partway and may have acted on it. Only an
    /// operation safe to repeat is sent again; another is looked up.
    MayHaveActed,
}

/// A vendor's error code, as it answered it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VendorCode {
    /// The `error` of Slack's `{"ok": false, "error": "..."}`.
    Slack(SlackError),
    /// The `code` of Twilio's `{"code": 21211, "message": "...", ...}`.
    Twilio(TwilioError),
    /// The `error.code` or `error.type` of a language-model API's error
    /// answer (OpenAI's `{"error": {"type", "code", ...}}`, Anthropic's
    /// `{"type": "error", "error": {"type", ...}}`).
    Llm(LlmError),
}

impl VendorCode {
    /// Whether trying again can help; `None` when the code alone does not
    /// say (a code not listed: the HTTP status decides, and an `ok: false`
    /// over HTTP 200 is not retried).
    pub fn retry(&self) -> Option<Retry> {
        match self {
            Self::Slack(SlackError::Other(_)) => None,
            Self::Slack(e) => Some(e.retry()),
            Self::Twilio(e) => e.retry(),
            Self::Llm(LlmError::Other(_)) => None,
            Self::Llm(e) => Some(e.retry()),
        }
    }

    /// A [`ConnectorError`] with `message`, classified as [`Self::retry`]
    /// says (`otherwise` when it does not), carrying this code.
    pub(crate) fn error(self, message: String, otherwise: Retry) -> ConnectorError {
        let error = match self.retry().unwrap_or(otherwise) {
            Retry::Never => ConnectorError::permanent(message),
            Retry::Later => ConnectorError::not_sent(message),
            Retry::MayHaveActed => ConnectorError::transient(message),
        };
        error.with_vendor(self)
    }
}

impl fmt::Display for VendorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (vendor, code, retry) = match self {
            Self::Slack(e) => ("slack", e.code().to_owned(), self.retry()),
            Self::Twilio(e) => ("twilio", e.code().to_string(), self.retry()),
            Self::Llm(e) => ("llm", e.code().to_owned(), self.retry()),
        };
        let advice = match retry {
            Some(Retry::Never) => "; retrying cannot help",
            Some(Retry::Later) => "; not acted on, retrying later can help",
            Some(Retry::MayHaveActed) => "; the vendor may have acted on it",
            None => "",
        };
        write!(f, "{vendor} error {code}{advice}")
    }
}

/// An enum of a vendor's string error codes, each with whether retrying can
/// help; a code not listed is `Other` and never retried.
macro_rules! string_errors {
    (
        $(#[$enum_doc:meta])* $name:ident, $example:literal;
        $($(#[$doc:meta])* $variant:ident = $code:literal => $retry:ident,)*
    ) => {
        $(#[$enum_doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$doc])* $variant,)*
            /// Another code: retrying cannot help as far as we know.
            Other(String),
        }

        impl $name {
            /// The error named `code`.
            pub fn parse(code: &str) -> Self {
                match code {
                    $($code => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }

            #[doc = concat!("The vendor's name for it (`", $example, "`).")]
            pub fn code(&self) -> &str {
                match self {
                    $(Self::$variant => $code,)*
                    Self::Other(code) => code,
                }
            }

            /// Whether trying again can help.
            pub fn retry(&self) -> Retry {
                match self {
                    $(Self::$variant => Retry::$retry,)*
                    Self::Other(_) => Retry::Never,
                }
            }
        }
    };
}

string_errors! {
    /// An error Slack's Web API answers with `ok: false` (see each
    /// method's page under <https://api.slack.com/methods>, and
    /// <https://api.slack.com/web#evaluating_responses>).
    SlackError, "channel_not_found";
    /// The channel does not exist or the token cannot see it.
    ChannelNotFound = "channel_not_found" => Never,
    /// The bot is not a member of the channel.
    NotInChannel = "not_in_channel" => Never,
    /// The channel is archived.
    IsArchived = "is_archived" => Never,
    /// The message text is too long.
    MsgTooLong = "msg_too_long" => Never,
    /// No message text was given.
    NoText = "no_text" => Never,
    /// The token is not valid.
    InvalidAuth = "invalid_auth" => Never,
    /// No token was given.
    NotAuthed = "not_authed" => Never,
    /// The token's user or workspace is deactivated.
    AccountInactive = "account_inactive" => Never,
    /// The token was revoked.
    TokenRevoked = "token_revoked" => Never,
    /// The token expired.
    TokenExpired = "token_expired" => Never,
    /// The token lacks a scope the method needs.
    MissingScope = "missing_scope" => Never,
    /// The workspace does not allow this.
    NoPermission = "no_permission" => Never,
    /// An argument is missing or malformed.
    InvalidArguments = "invalid_arguments" => Never,
    /// No such user.
    UserNotFound = "user_not_found" => Never,
    /// Too many calls: Slack did not act on this one.
    Ratelimited = "ratelimited" => Later,
    /// Too many messages posted (`chat.postMessage`'s own code).
    RateLimited = "rate_limited" => Later,
    /// Slack is unavailable for a while.
    ServiceUnavailable = "service_unavailable" => Later,
    /// The workspace is being migrated; calls fail for a while.
    TeamAddedToOrg = "team_added_to_org" => Later,
    /// The request's body arrived missing or truncated: not acted on.
    RequestTimeout = "request_timeout" => Later,
    /// Slack failed; some of the operation may have happened.
    InternalError = "internal_error" => MayHaveActed,
    /// Slack failed badly; some of the operation may have happened.
    FatalError = "fatal_error" => MayHaveActed,
}

string_errors! {
    /// An error type or code of a language-model API: OpenAI's
    /// (<https://platform.openai.com/docs/guides/error-codes>) and
    /// Anthropic's (<https://docs.anthropic.com/en/api/errors>). A code not
    /// listed goes by its HTTP status.
    LlmError, "rate_limit_exceeded";
    /// The request is malformed (both APIs).
    InvalidRequest = "invalid_request_error" => Never,
    /// The API key is wrong (Anthropic).
    Authentication = "authentication_error" => Never,
    /// The API key is wrong (OpenAI).
    InvalidApiKey = "invalid_api_key" => Never,
    /// The key may not use this model or endpoint (Anthropic).
    Permission = "permission_error" => Never,
    /// No such model or endpoint (Anthropic).
    NotFound = "not_found_error" => Never,
    /// No such model (OpenAI).
    ModelNotFound = "model_not_found" => Never,
    /// The request is too large (Anthropic).
    RequestTooLarge = "request_too_large" => Never,
    /// The account's credit is used up (OpenAI, with HTTP 429): waiting
    /// does not help.
    InsufficientQuota = "insufficient_quota" => Never,
    /// Too many requests or tokens (OpenAI): not acted on.
    RateLimitExceeded = "rate_limit_exceeded" => Later,
    /// Too many requests or tokens (Anthropic): not acted on.
    RateLimit = "rate_limit_error" => Later,
    /// The API is overloaded (Anthropic, HTTP 529): not acted on.
    Overloaded = "overloaded_error" => Later,
    /// The API failed (Anthropic).
    Api = "api_error" => MayHaveActed,
    /// The API failed (OpenAI).
    Server = "server_error" => MayHaveActed,
}

/// The error code of a language-model API's error answer, if it has one:
/// `error.code` when it is a code (OpenAI), else `error.type` (both).
pub(crate) fn llm_code(answer: &Value) -> Option<VendorCode> {
    let error = answer.get("error")?;
    let code = ["code", "type"]
        .into_iter()
        .filter_map(|field| error.get(field).and_then(Value::as_str))
        .find(|code| is_code(code))?;
    Some(VendorCode::Llm(LlmError::parse(code)))
}

macro_rules! twilio_errors {
    ($($(#[$doc:meta])* $variant:ident = $code:literal => $retry:ident,)*) => {
        /// An error code of Twilio's REST API
        /// (<https://www.twilio.com/docs/api/errors>).
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum TwilioError {
            $($(#[$doc])* $variant,)*
            /// Another code: its HTTP status says whether retrying helps.
            Other(u32),
        }

        impl TwilioError {
            /// The error Twilio numbered `code`.
            pub fn parse(code: u32) -> Self {
                match code {
                    $($code => Self::$variant,)*
                    other => Self::Other(other),
                }
            }

            /// Twilio's number for it (`21211`).
            pub fn code(&self) -> u32 {
                match self {
                    $(Self::$variant => $code,)*
                    Self::Other(code) => *code,
                }
            }

            /// Whether trying again can help; `None` for a code not listed.
            pub fn retry(&self) -> Option<Retry> {
                match self {
                    $(Self::$variant => Some(Retry::$retry),)*
                    Self::Other(_) => None,
                }
            }
        }
    };
}

twilio_errors! {
    /// 20003: the account SID or auth token is wrong.
    Authentication = 20003 => Never,
    /// 20404: no such resource.
    NotFound = 20404 => Never,
    /// 20429: too many requests; Twilio did not act on this one.
    TooManyRequests = 20429 => Later,
    /// 20500: Twilio failed; it may have acted on the request.
    InternalServerError = 20500 => MayHaveActed,
    /// 20503: Twilio is unavailable for a while.
    ServiceUnavailable = 20503 => Later,
    /// 21211: the `To` number is not a valid phone number.
    InvalidToNumber = 21211 => Never,
    /// 21408: sending to the number's region is not enabled.
    RegionNotEnabled = 21408 => Never,
    /// 21602: the message body is missing.
    BodyRequired = 21602 => Never,
    /// 21604: the `To` number is missing.
    ToRequired = 21604 => Never,
    /// 21606: the `From` number cannot send SMS for this account.
    InvalidFromNumber = 21606 => Never,
    /// 21608: a trial account may only send to verified numbers.
    UnverifiedNumber = 21608 => Never,
    /// 21610: the recipient unsubscribed (replied STOP).
    Unsubscribed = 21610 => Never,
    /// 21611: the `From` number's queue is full; not queued, try later.
    QueueFull = 21611 => Later,
    /// 21612: the `To` number cannot be reached by SMS from this number.
    Unreachable = 21612 => Never,
    /// 21614: the `To` number is not a mobile number.
    NotMobile = 21614 => Never,
    /// 21617: the body is over 1,600 characters.
    BodyTooLong = 21617 => Never,
}

/// The Slack error of an `ok: false` answer, if it is one.
pub(crate) fn slack_code(answer: &Value) -> Option<VendorCode> {
    if answer.get("ok").and_then(Value::as_bool) != Some(false) {
        return None;
    }
    let code = answer
        .get("error")
        .and_then(Value::as_str)
        .filter(|code| is_code(code))
        .unwrap_or("unknown_error");
    Some(VendorCode::Slack(SlackError::parse(code)))
}

/// The Twilio error code of an error answer, if it has one.
pub(crate) fn twilio_code(answer: &Value) -> Option<VendorCode> {
    let code = answer.get("code").and_then(Value::as_u64)?;
    let code = u32::try_from(code).ok()?;
    Some(VendorCode::Twilio(TwilioError::parse(code)))
}

/// Whether a vendor's error string looks like a code (short, lower-case
/// words), not something else it echoed.
fn is_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn slack_codes_say_whether_retrying_helps() {
        let code = |error: &str| slack_code(&json!({"ok": false, "error": error})).unwrap();
        assert_eq!(
            code("channel_not_found"),
            VendorCode::Slack(SlackError::ChannelNotFound)
        );
        assert_eq!(code("not_in_channel").retry(), Some(Retry::Never));
        assert_eq!(code("invalid_auth").retry(), Some(Retry::Never));
        assert_eq!(code("ratelimited").retry(), Some(Retry::Later));
        assert_eq!(code("internal_error").retry(), Some(Retry::MayHaveActed));
        assert_eq!(
            code("something_new"),
            VendorCode::Slack(SlackError::Other("something_new".to_owned()))
        );
        assert_eq!(
            code("Bearer xoxb-echoed"),
            VendorCode::Slack(SlackError::Other("unknown_error".to_owned())),
            "an error that is not a code is not quoted"
        );
        assert_eq!(slack_code(&json!({"ok": true})), None);
    }

    #[test]
    fn llm_codes_say_whether_retrying_helps() {
        let openai = json!({"error": {"message": "m", "type": "insufficient_quota",
            "param": null, "code": "insufficient_quota"}});
        assert_eq!(
            llm_code(&openai),
            Some(VendorCode::Llm(LlmError::InsufficientQuota))
        );
        let anthropic = json!({"type": "error", "error": {"type": "overloaded_error",
            "message": "Overloaded"}});
        let code = llm_code(&anthropic).unwrap();
        assert_eq!(code.retry(), Some(Retry::Later));
        let typed =
            json!({"error": {"message": "m", "type": "invalid_request_error", "code": null}});
        assert_eq!(llm_code(&typed).unwrap().retry(), Some(Retry::Never));
        assert_eq!(llm_code(&json!({"error": "sk-echoed key"})), None);
    }

    #[test]
    fn twilio_codes_say_whether_retrying_helps() {
        let code =
            |n: u32| twilio_code(&json!({"code": n, "message": "m", "status": 400})).unwrap();
        assert_eq!(
            code(21211),
            VendorCode::Twilio(TwilioError::InvalidToNumber)
        );
        assert_eq!(code(21610).retry(), Some(Retry::Never));
        assert_eq!(code(20429).retry(), Some(Retry::Later));
        assert_eq!(code(99999).retry(), None);
        assert_eq!(twilio_code(&json!({"message": "no code"})), None);
        let error = code(21211).error("x".to_owned(), Retry::MayHaveActed);
        assert!(!error.is_retryable());
        assert_eq!(
            error.vendor(),
            Some(&VendorCode::Twilio(TwilioError::InvalidToNumber))
        );
        assert_eq!(
            code(21610).to_string(),
            "twilio error 21610; retrying cannot help"
        );
    }
}
