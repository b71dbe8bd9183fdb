//! Credit balances: a balance that either resets to the budget at the start of
//! every refill period (aligned to the epoch) or, with no period, is a prepaid
//! balance the operator tops up. The same arithmetic runs in the Redis script.

/// The largest credit amount tollgate accepts anywhere: a plan's budget, a
/// starting balance, a top-up, and a balance after a top-up (in either
/// direction, so balances stay within `-MAX_CREDITS..=MAX_CREDITS`).
///
/// The Redis scripts compute balances as Lua numbers (IEEE doubles), exact only
/// up to 2^53; 10^15 stays well below that even after a route's cost is taken.
pub const MAX_CREDITS: u64 = 1_000_000_000_000_000;

/// Whether `amount` is a credit amount tollgate accepts (`|amount| <= MAX_CREDITS`).
pub fn within_bound(amount: i64) -> bool {
    amount.unsigned_abs() <= MAX_CREDITS
}

/// A balance and the refill window it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreditState {
    pub balance: i64,
    pub window: i64,
}

/// A request's credit charge, with the plan's budget and refill period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditCharge {
    pub cost: u64,
    pub budget: u64,
    /// Refill period in milliseconds; `None`: prepaid, never refilled.
    pub refill_ms: Option<i64>,
}

impl CreditCharge {
    /// The state at `now_ms`: a stale window is refilled to the budget.
    pub fn current(&self, state: Option<CreditState>, now_ms: i64) -> CreditState {
        match self.refill_ms {
            Some(period) if period > 0 => {
                let window = now_ms.div_euclid(period);
                match state {
                    Some(s) if s.window == window => s,
                    _ => CreditState {
                        balance: i64::try_from(self.budget).unwrap_or(i64::MAX),
                        window,
                    },
                }
            }
            _ => state.unwrap_or_default(),
        }
    }

    /// `delta` credits added (negative: removed) at `now_ms`, a stale window
    /// refilled first: the state to store, or `Err(balance)` with the balance
    /// as it stands when the result would leave ±[`MAX_CREDITS`] (nothing
    /// changes then). `credits.lua` does the same.
    pub fn add(
        &self,
        state: Option<CreditState>,
        delta: i64,
        now_ms: i64,
    ) -> Result<CreditState, i64> {
        let current = self.current(state, now_ms);
        current
            .balance
            .checked_add(delta)
            .filter(|b| within_bound(*b))
            .map(|balance| CreditState { balance, ..current })
            .ok_or(current.balance)
    }

    /// Milliseconds until the next refill, if the balance refills.
    pub fn refill_in_ms(&self, now_ms: i64) -> Option<i64> {
        self.refill_ms
            .filter(|p| *p > 0)
            .map(|p| (now_ms.div_euclid(p) + 1) * p - now_ms)
    }

    /// The cost as a signed amount.
    pub fn cost_i64(&self) -> i64 {
        i64::try_from(self.cost).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_at_window_start() {
        let c = CreditCharge {
            cost: 1,
            budget: 100,
            refill_ms: Some(3_600_000),
        };
        let s = c.current(None, 10);
        assert_eq!(s.balance, 100);
        let spent = CreditState {
            balance: 0,
            window: s.window,
        };
        assert_eq!(c.current(Some(spent), 3_599_999).balance, 0);
        assert_eq!(c.current(Some(spent), 3_600_000).balance, 100);
        assert_eq!(c.refill_in_ms(3_599_000), Some(1_000));
    }

    #[test]
    fn the_bound_is_exact_in_a_double() {
        // Every amount up to the bound, and the bound plus the largest cost a
        // route may have (at most the largest budget), is exact as an f64.
        let top = MAX_CREDITS * 2;
        assert!(top < (1u64 << 53));
        assert_eq!(top as f64 as u64, top);
        assert!(within_bound(i64::try_from(MAX_CREDITS).expect("fits")));
        assert!(within_bound(-i64::try_from(MAX_CREDITS).expect("fits")));
        assert!(!within_bound(i64::try_from(MAX_CREDITS + 1).expect("fits")));
        assert!(!within_bound(i64::MIN));
    }

    #[test]
    fn additions_refill_first_and_stay_within_the_bound() {
        let max = i64::try_from(MAX_CREDITS).expect("fits");
        let hourly = CreditCharge {
            cost: 1,
            budget: 100,
            refill_ms: Some(3_600_000),
        };
        let spent = CreditState {
            balance: 3,
            window: 0,
        };
        let next_window = CreditState {
            balance: 105,
            window: 1,
        };
        assert_eq!(hourly.add(Some(spent), 5, 3_600_000), Ok(next_window));
        assert_eq!(hourly.add(Some(spent), max, 10), Err(3));
        let prepaid = CreditCharge {
            refill_ms: None,
            ..hourly
        };
        assert_eq!(
            prepaid.add(None, -max, 0),
            Ok(CreditState {
                balance: -max,
                window: 0
            })
        );
        assert_eq!(prepaid.add(None, i64::MIN, 0), Err(0));
    }

    #[test]
    fn prepaid_never_refills() {
        let c = CreditCharge {
            cost: 5,
            budget: 100,
            refill_ms: None,
        };
        assert_eq!(c.current(None, 0).balance, 0);
        let s = CreditState {
            balance: 7,
            window: 0,
        };
        assert_eq!(c.current(Some(s), 1 << 40).balance, 7);
        assert_eq!(c.refill_in_ms(0), None);
    }
}
