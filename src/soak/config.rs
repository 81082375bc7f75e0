//! What a soak run is asked to do, and the seeded generator every random choice comes from.
//! A leaf: everything else in the soak builds on it.

use std::time::Duration;

/// The soak's parameters. Two runs with equal configurations make the same choices, inject
/// the same faults at the same points and report the same figures (wall time aside).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoakConfig {
    /// Seeds the fault schedule and the data patterns.
    pub seed: u64,
    /// Faults to inject.
    pub faults: u32,
    /// NVMe controllers in the reset group (functions 01:00.0 onwards), 1..=8 (7 with a NIC).
    pub controllers: u8,
    /// Adds an 82599 port (model "ixgbe") with echo traffic to the group, after the
    /// controllers, recovering last.
    pub nic: bool,
    /// Writes kept in flight per controller.
    pub depth: usize,
    /// Acknowledged writes per controller between two faults: drawn from this range.
    pub writes_between: (u32, u32),
}

impl Default for SoakConfig {
    fn default() -> Self {
        SoakConfig {
            seed: 1,
            faults: 1000,
            controllers: 3,
            nic: false,
            depth: 8,
            writes_between: (4, 24),
        }
    }
}

/// Functions of a PCI device: the slot holds the controllers and the NIC.
pub const MAX_FUNCTIONS: u8 = 8;

impl SoakConfig {
    /// Checks the configuration; the error says which value is out of range.
    pub fn validate(&self) -> Result<(), String> {
        let max = MAX_FUNCTIONS - u8::from(self.nic);
        if self.controllers == 0 || self.controllers > max {
            return Err(format!(
                "controllers {} (expected 1..={max}{})",
                self.controllers,
                if self.nic { " with --nic" } else { "" }
            ));
        }
        if self.depth == 0 || self.depth > 64 {
            return Err(format!("depth {} (expected 1..=64)", self.depth));
        }
        let (low, high) = self.writes_between;
        if low == 0 || low > high {
            return Err(format!(
                "writes between faults {low}..={high} (expected 1 ≤ low ≤ high)"
            ));
        }
        Ok(())
    }
}

/// Timing of the simulated devices and the drivers, short so that a fault is detected
/// within a few milliseconds of virtual time.
pub mod timing {
    use super::Duration;

    /// Each I/O command takes this long in the NVMe model.
    pub const IO_LATENCY: Duration = Duration::from_micros(100);
    /// `CSTS.RDY` follows `CC.EN` this long after it changes, both ways.
    pub const READY_DELAY: Duration = Duration::from_micros(500);
    /// Virtual time a workload round without progress lets pass.
    pub const IDLE_STEP: Duration = Duration::from_micros(50);
    /// The queue pairs' command timeout and the wait after an Abort.
    pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(2);
    /// How often the queue pairs scan for expired commands.
    pub const TIMEOUT_CHECK: Duration = Duration::from_micros(500);
    /// Admin command timeout (an Abort sent to a hung controller waits this long).
    pub const ADMIN_TIMEOUT: Duration = Duration::from_millis(20);
    /// Participant budgets.
    pub const QUIESCE_BUDGET: Duration = Duration::from_millis(50);
    /// Participant budgets.
    pub const RECOVER_BUDGET: Duration = Duration::from_millis(500);
    /// Virtual time an episode (one fault and its consequences) may take before the soak
    /// calls it a stall.
    pub const EPISODE_LIMIT: Duration = Duration::from_secs(120);
    /// Virtual time the writes in flight at the end may take to be answered.
    pub const SETTLE_LIMIT: Duration = Duration::from_secs(1);
}

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, and the same sequence everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A value in `low..=high`.
    pub fn between(&mut self, low: u32, high: u32) -> u32 {
        low + self.below(u64::from(high.saturating_sub(low)) + 1) as u32
    }

    /// True with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_a_function_of_its_seed() {
        let a: Vec<u64> = (0..4)
            .scan(Rng::new(9), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..4)
            .scan(Rng::new(9), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..4)
            .scan(Rng::new(10), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| (3..=5).contains(&r.between(3, 5))));
    }

    #[test]
    fn out_of_range_configurations_are_refused_naming_the_value() {
        let nic = SoakConfig {
            controllers: 8,
            nic: true,
            ..SoakConfig::default()
        };
        assert_eq!(
            nic.validate().unwrap_err(),
            "controllers 8 (expected 1..=7 with --nic)"
        );
        let depth = SoakConfig {
            depth: 0,
            ..SoakConfig::default()
        };
        assert_eq!(depth.validate().unwrap_err(), "depth 0 (expected 1..=64)");
        assert!(SoakConfig::default().validate().is_ok());
    }
}
