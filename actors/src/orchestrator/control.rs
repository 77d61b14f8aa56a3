//! The runs this node executes, by id, and how to cut each off: what
//! [`super::CancelRun`] reaches. A run is registered from its first durable
//! event to its outcome; every attempt's cancellation token is a child of
//! its run's, so cancelling the run cuts off the attempt and its steps.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use neonhub_events::{ErrorKind, RunError, RunId};
use tokio_util::sync::CancellationToken;

use crate::agent::AgentContext;

/// Why a run was cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Someone cancelled it ([`super::CancelRun`]), maybe saying why: the
    /// run ends `cancelled`.
    Cancelled(Option<String>),
    /// The node shuts down: the attempt stops and the run stays unfinished
    /// in the log, for the next start to resume.
    Shutdown,
}

/// One run's cancellation: the token its attempts' tokens descend from, and
/// why it was cut off.
#[derive(Debug, Default)]
pub(crate) struct Control {
    token: CancellationToken,
    cut: RefCell<Option<Cut>>,
    /// The attempt running now, if one is: what [`super::CallStep`] reaches.
    attempt: RefCell<Option<AgentContext>>,
}

impl Control {
    /// A token for the run's next attempt: cancelled with the run, or alone
    /// when that attempt is cut off.
    pub(crate) fn attempt_token(&self) -> CancellationToken {
        self.token.child_token()
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Waits until the run is cancelled.
    pub(crate) async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// Records the attempt running now (`None` between attempts).
    pub(crate) fn set_attempt(&self, attempt: Option<AgentContext>) {
        *self.attempt.borrow_mut() = attempt;
    }

    /// The attempt running now.
    pub(crate) fn attempt(&self) -> Option<AgentContext> {
        self.attempt.borrow().clone()
    }

    fn cut(&self, cut: Cut) {
        if !self.token.is_cancelled() {
            *self.cut.borrow_mut() = Some(cut);
            self.token.cancel();
        }
    }

    /// The run's terminal error once it was cancelled; `None` if it was cut
    /// off by a shutdown (it must not end).
    pub(crate) fn error(&self) -> Option<RunError> {
        let message = match self.cut.borrow().as_ref()? {
            Cut::Cancelled(Some(reason)) => format!("the run was cancelled: {reason}"),
            Cut::Cancelled(None) => "the run was cancelled".to_owned(),
            Cut::Shutdown => return None,
        };
        Some(RunError::new(ErrorKind::Cancelled, message))
    }
}

/// The runs in execution on this node.
#[derive(Clone, Debug, Default)]
pub(crate) struct Running(Rc<RefCell<HashMap<RunId, Rc<Control>>>>);

impl Running {
    /// Registers `run_id` until the returned guard is dropped.
    pub(crate) fn register(&self, run_id: RunId) -> Registered {
        let control = Rc::new(Control::default());
        self.0.borrow_mut().insert(run_id, Rc::clone(&control));
        Registered {
            running: self.clone(),
            run_id,
            control,
        }
    }

    /// The control of `run_id`, if this node executes it.
    pub(crate) fn get(&self, run_id: RunId) -> Option<Rc<Control>> {
        self.0.borrow().get(&run_id).cloned()
    }

    /// Cancels `run_id` if this node executes it; whether it does.
    pub(crate) fn cancel(&self, run_id: RunId, reason: Option<String>) -> bool {
        let control = self.0.borrow().get(&run_id).cloned();
        control.map(|c| c.cut(Cut::Cancelled(reason))).is_some()
    }

    /// Cuts off every run this node executes, for a shutdown; returns them.
    pub(crate) fn interrupt_all(&self) -> Vec<RunId> {
        let all: Vec<(RunId, Rc<Control>)> = self
            .0
            .borrow()
            .iter()
            .map(|(id, c)| (*id, Rc::clone(c)))
            .collect();
        all.into_iter()
            .map(|(run_id, control)| {
                control.cut(Cut::Shutdown);
                run_id
            })
            .collect()
    }
}

/// A run registered in [`Running`]; unregistered on drop.
#[derive(Debug)]
pub(crate) struct Registered {
    running: Running,
    run_id: RunId,
    control: Rc<Control>,
}

impl std::ops::Deref for Registered {
    type Target = Control;

    fn deref(&self) -> &Control {
        &self.control
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.running.0.borrow_mut().remove(&self.run_id);
    }
}
