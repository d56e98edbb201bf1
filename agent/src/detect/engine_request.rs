//! Request-phase judging: the rules that need only the request (catalogue phase `Request`),
//! before the response exists — what acting inline needs.

use serde_json::Value;

use super::{
    super::{
        content, inject,
        inputs::{self, Check},
        rules, system_inject,
    },
    Engine, RuleId, StatelessRule, View,
};
use crate::event::ExchangeEvent;

/// How a request-phase rule runs.
pub(super) enum RequestRule {
    /// On the view, alone.
    Alone(StatelessRule),
    /// In the one shared walk of the request's inputs ([`Engine::input_rules`]): its place in
    /// that walk's result.
    Inputs(usize),
}

/// Rules that need only the request (catalogue phase `Request`), in the order they run.
pub(super) const REQUEST_RULES: [(RuleId, RequestRule); 7] = [
    (
        RuleId::Auth5,
        RequestRule::Alone(rules::auth5_credentials_exposed),
    ),
    (
        RuleId::Data2,
        RequestRule::Alone(rules::data2_sensitive_in_url),
    ),
    (RuleId::Inj1, RequestRule::Inputs(0)),
    (RuleId::Inj2, RequestRule::Inputs(1)),
    (RuleId::Inj3, RequestRule::Inputs(2)),
    (RuleId::Ssrf1, RequestRule::Alone(rules::ssrf1_internal_url)),
    (RuleId::Scan1, RequestRule::Alone(rules::scan1_scanner)),
];

/// What the request alone says: the request-phase rules that fired, and whether its actor is
/// on the abusive list (and why). Available before the response exists, which is what acting
/// inline needs; an exchange's findings include these hits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestVerdict {
    pub hits: Vec<(RuleId, Value)>,
    /// The rule that listed the actor, when it is listed now.
    pub actor_listed_for: Option<String>,
}

impl Engine {
    pub(super) fn request_verdict(&mut self, v: &View) -> RequestVerdict {
        let mut inputs = self.input_rules(v);
        let hits = REQUEST_RULES
            .iter()
            .filter(|(id, _)| self.on(*id))
            .filter_map(|(id, rule)| {
                match rule {
                    RequestRule::Alone(rule) => rule(v),
                    RequestRule::Inputs(at) => inputs.get_mut(*at).and_then(Option::take),
                }
                .map(|evidence| (*id, evidence))
            })
            .collect();
        // Most of the time nobody is listed: skip making the actor's text.
        let actor_listed_for = (!self.abusive.is_empty())
            .then(|| self.abusive.get(v.actor()))
            .flatten()
            .filter(|l| l.until_ms > v.epoch_ms)
            .map(|l| l.because.clone());
        RequestVerdict {
            hits,
            actor_listed_for,
        }
    }

    /// INJ-1, INJ-2 and INJ-3 (in that order; None for a rule that is off) in one walk of the
    /// request's inputs, skipping values each found clean before at the same place.
    fn input_rules(&mut self, v: &View) -> [Option<Value>; 3] {
        let (mut inj1, mut inj2, mut inj3) = (
            rules::inj1_value,
            system_inject::inj2_value,
            inject::inj3_value,
        );
        let [mut c1, mut c2, mut c3] = [
            Check::new(RuleId::Inj1, false, &mut inj1),
            Check::new(RuleId::Inj2, false, &mut inj2),
            // One rule reports a request with more inputs than are examined.
            Check::new(RuleId::Inj3, true, &mut inj3),
        ];
        if !self.on(RuleId::Inj1) {
            c1.settle(None);
        }
        if !self.on(RuleId::Inj2) {
            c2.settle(None);
        } else if let Some(found) = system_inject::inj2_path(v) {
            c2.settle(Some(found));
        }
        if !self.on(RuleId::Inj3) {
            c3.settle(None);
        }
        let mut checks = [c1, c2, c3];
        inputs::walk_rules(v, Some(&mut self.clean_values), &mut checks);
        checks.map(|c| c.found)
    }

    /// Request-phase judging: the rules that need only the request head and its tapped body
    /// (INJ-*, SSRF-1, AUTH-5, DATA-2, SCAN-1) and the abusive-list check, on an exchange whose
    /// response may not exist yet. Changes no judging state (it may remember clean inputs):
    /// the exchange is judged whole (and its findings emitted and counted) by
    /// [`Engine::inspect`] once it completes. None when the exchange is not judged (client
    /// side, allowlisted, no request).
    pub fn judge_request(
        &mut self,
        event: &ExchangeEvent<'_>,
        epoch_ms: i64,
        bodies: &content::Bodies,
    ) -> Option<RequestVerdict> {
        let v = View::with_tap(event, epoch_ms, bodies)?;
        self.judged(&v).then(|| self.request_verdict(&v))
    }
}
