//! Weighted schedule shared by smooth weighted round-robin and weighted random.
//!
//! The schedule is one period of picks, built once per membership change: backend `i`
//! appears exactly `w_i` times in a period of `S = Σ w_i` slots (weights first divided by
//! their gcd). Round-robin walks it with an atomic counter, random indexes it with random
//! bits: both are O(1) and lock-free on the hot path.
//!
//! Interleaving: slot order is by "deadline" `(k - ½) / w_i` for the `k`-th pick of
//! backend `i` (ties by index), the Sainte-Laguë/stride order. Like nginx's smooth
//! weighted round-robin it spreads each backend's picks evenly through the period
//! (weights 5,1,1 give `a a a b c a a`, nginx gives `a a b a c a a`), and in every prefix
//! of `m` slots backend `i` has `m·w_i/S ± (½ + n·w_i/2S)` picks. Unlike nginx's
//! per-request "add weights, pick max" loop, it needs no per-request lock and is built in
//! O(S log S) rather than O(n·S).
//!
//! Size: a period longer than [`MAX_PERIOD`] slots is scaled down proportionally (each
//! backend keeps at least one slot), so weights are honoured exactly up to that period
//! length and to within one slot per backend beyond it.

use std::cmp::Ordering;

/// Longest schedule kept (slots; 4 bytes each). A pool with more backends than this gets
/// one slot each.
pub const MAX_PERIOD: u64 = 1 << 16;

/// One period of weighted picks (indexes into the pool).
#[derive(Debug, Clone)]
pub(super) struct Schedule {
    slots: Vec<u32>,
}

impl Schedule {
    /// Builds the schedule for these weights (0 is treated as 1).
    pub(super) fn new(weights: &[u32]) -> Self {
        let weights = period_weights(weights);
        let mut picks: Vec<(u64, u64, u32)> =
            Vec::with_capacity(weights.iter().sum::<u64>() as usize);
        for (i, &w) in weights.iter().enumerate() {
            // Deadline (k - ½)/w, kept as the exact fraction (2k - 1) / 2w.
            picks.extend((1..=w).map(|k| (2 * k - 1, 2 * w, i as u32)));
        }
        picks.sort_unstable_by(|a, b| {
            match (u128::from(a.0) * u128::from(b.1)).cmp(&(u128::from(b.0) * u128::from(a.1))) {
                Ordering::Equal => a.2.cmp(&b.2),
                other => other,
            }
        });
        Schedule { slots: picks.into_iter().map(|p| p.2).collect() }
    }

    /// Length of one period.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The backend at position `k` (taken modulo the period).
    pub(super) fn slot(&self, k: usize) -> usize {
        self.slots[k % self.slots.len()] as usize
    }
}

/// The weights one period uses: divided by their gcd, then scaled down to fit
/// [`MAX_PERIOD`] when needed (never below 1).
fn period_weights(weights: &[u32]) -> Vec<u64> {
    let ws: Vec<u64> = weights.iter().map(|&w| u64::from(w.max(1))).collect();
    let g = ws.iter().copied().fold(0, gcd).max(1);
    let ws: Vec<u64> = ws.into_iter().map(|w| w / g).collect();
    let total: u64 = ws.iter().sum();
    if total <= MAX_PERIOD {
        return ws;
    }
    ws.into_iter()
        .map(|w| (u128::from(w) * u128::from(MAX_PERIOD) / u128::from(total)).max(1) as u64)
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn order(weights: &[u32]) -> String {
        let s = Schedule::new(weights);
        (0..s.len()).map(|k| char::from(b'a' + s.slot(k) as u8)).collect()
    }

    #[test]
    fn interleaves_like_smooth_round_robin() {
        assert_eq!(order(&[5, 1, 1]), "aaabcaa");
        assert_eq!(order(&[1, 1, 1]), "abc");
        assert_eq!(order(&[2, 1]), "aba");
        assert_eq!(order(&[4, 2]), "aba", "weights are reduced by their gcd");
        assert_eq!(order(&[0, 1]), "ab", "weight 0 counts as 1");
    }

    #[test]
    fn oversized_period_is_scaled_down() {
        let s = Schedule::new(&[u32::MAX, 1, u32::MAX - 1]);
        assert!(s.len() as u64 <= MAX_PERIOD + 3, "len {}", s.len());
        let count = |b| (0..s.len()).filter(|&k| s.slot(k) == b).count();
        assert_eq!(count(1), 1, "a tiny weight keeps one slot");
        assert!(count(0).abs_diff(count(2)) <= 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Each backend gets exactly its (gcd-reduced) weight per period, and every prefix
        /// stays within the smoothness bound of the module doc.
        #[test]
        fn exact_per_period_and_smooth(weights in prop::collection::vec(1u32..50, 1..20)) {
            let s = Schedule::new(&weights);
            let reduced = period_weights(&weights);
            let total: u64 = reduced.iter().sum();
            prop_assert_eq!(s.len() as u64, total);
            let n = weights.len() as f64;
            let mut counts = vec![0u64; weights.len()];
            for m in 1..=s.len() {
                counts[s.slot(m - 1)] += 1;
                for (i, &c) in counts.iter().enumerate() {
                    let share = reduced[i] as f64 / total as f64;
                    let expected = m as f64 * share;
                    prop_assert!((c as f64 - expected).abs() <= 0.5 + n * share / 2.0 + 1e-9,
                        "prefix {} backend {}: {} picks, expected {:.2}", m, i, c, expected);
                }
            }
            prop_assert_eq!(counts, reduced);
        }
    }
}
