//! The two profiles: `quick` (< 3 minutes, small sizes) and `full` (< 15 minutes, issue 5's
//! sizes).

use serde::Serialize;

use crate::report::Shape;
use crate::stats::ladder;

/// Sizes and durations of a run.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// `quick` or `full`.
    pub name: String,
    /// Scenario 1 shapes.
    pub shapes: Vec<Shape>,
    /// Offered deliveries/s, stepped up until a step fails.
    pub ladder: Vec<f64>,
    /// Steps run after the first failure to narrow the capacity down (each halves the ratio
    /// between the capacity found and the failing load above it: a doubling ladder alone
    /// resolves capacities only to powers of two).
    pub refine: u32,
    /// Seconds each step sends.
    pub step_secs: f64,
    /// Scenario 2: conversations (two members each, both sending).
    pub durable_conversations: usize,
    /// Scenario 2: unacknowledged sends per sender.
    pub durable_window: usize,
    /// Scenario 2: seconds.
    pub durable_secs: f64,
    /// Naive comparison: conversations, concurrency, messages.
    pub naive: (usize, usize, usize),
    /// Scenario 3: connections wanted (capped by the open-files limit).
    pub idle_connections: usize,
    /// Scenario 3: users they belong to.
    pub idle_users: usize,
    /// Scenario 3: connections per source address.
    pub idle_per_address: usize,
    /// Scenario 4 shape.
    pub two_nodes: Shape,
    /// Scenario 4 ladder.
    pub two_nodes_ladder: Vec<f64>,
    /// Registrations in flight (argon2id bound).
    pub register_parallel: usize,
}

impl Profile {
    /// `quick` or `full`.
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "quick" => Some(Self {
                name: "quick".to_owned(),
                shapes: vec![Shape { groups: 10, size: 10, senders: 2 }, Shape { groups: 1, size: 100, senders: 5 }],
                ladder: ladder(12_500.0, 100_000.0, 2.0),
                refine: 1,
                step_secs: 1.5,
                durable_conversations: 10,
                durable_window: 8,
                durable_secs: 3.0,
                naive: (10, 20, 2_000),
                idle_connections: 2_000,
                idle_users: 10,
                idle_per_address: 1_000,
                two_nodes: Shape { groups: 1, size: 50, senders: 5 },
                two_nodes_ladder: ladder(12_500.0, 50_000.0, 2.0),
                register_parallel: 4,
            }),
            "full" => Some(Self {
                name: "full".to_owned(),
                shapes: vec![
                    Shape { groups: 100, size: 10, senders: 2 },
                    Shape { groups: 10, size: 100, senders: 5 },
                    Shape { groups: 1, size: 1000, senders: 20 },
                ],
                ladder: ladder(12_500.0, 1_600_000.0, 2.0),
                refine: 2,
                step_secs: 3.0,
                durable_conversations: 50,
                durable_window: 8,
                durable_secs: 8.0,
                // As many writers as the durable scenario holds sends in flight (100 × 8).
                naive: (50, 800, 50_000),
                idle_connections: 20_000,
                idle_users: 100,
                idle_per_address: 4_000,
                two_nodes: Shape { groups: 10, size: 100, senders: 5 },
                two_nodes_ladder: ladder(12_500.0, 800_000.0, 2.0),
                register_parallel: 4,
            }),
            _ => None,
        }
    }

    /// Users scenario 1 needs on our server (the largest shape).
    #[must_use]
    pub fn fanout_users(&self) -> usize {
        self.shapes.iter().map(|s| s.groups * s.size).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_include_the_equal_load_step_and_fit_their_users() {
        for name in ["quick", "full"] {
            let p = Profile::named(name).expect("known profile");
            assert!(p.ladder.contains(&crate::report::EQUAL_LOAD), "{name}: {:?}", p.ladder);
            assert!(p.shapes.iter().all(|s| s.senders <= s.size && s.senders > 0));
            assert!(p.idle_per_address > 0 && p.idle_users > 0);
        }
        assert_eq!(Profile::named("full").map(|p| p.fanout_users()), Some(1000));
        assert!(Profile::named("slow").is_none());
    }
}
