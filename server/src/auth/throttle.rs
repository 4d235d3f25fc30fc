//! Sign-in throttling: per address, a GCRA budget of attempts per minute (governor), an
//! IPv6 address counted by its /64 (one client holds a whole /64; [`address_key`]); per
//! account, a lockout after [`FREE_FAILURES`] wrong passwords in a row that doubles with
//! each further one (1 s, 2 s, 4 s … at most [`MAX_LOCK_SECS`]), kept in
//! `users.failed_sign_ins` / `users.locked_until` so every instance sees it. A right
//! password clears it.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sqlx::PgConnection;

/// Wrong passwords in a row before the account is locked.
pub const FREE_FAILURES: i32 = 5;
/// The longest lockout, in seconds.
pub const MAX_LOCK_SECS: i64 = 15 * 60;
/// Addresses remembered before the idle ones are forgotten.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// The budget an address spends: an IPv4 address its own, an IPv6 address its /64's, an
/// IPv4-mapped IPv6 address its IPv4 address's.
pub fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// Attempts per address (see [`address_key`]).
#[derive(Debug)]
pub struct AddressThrottle {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl AddressThrottle {
    pub fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        AddressThrottle {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }

    /// Spends one attempt of `address`, or answers the seconds to wait.
    pub fn check(&self, address: IpAddr) -> Result<(), u64> {
        if self.limiter.len() > MAX_TRACKED_ADDRESSES {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&address_key(address))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
            })
    }
}

/// How long the account of someone with `failures` wrong passwords in a row is locked.
pub fn lock_secs(failures: i32) -> Option<i64> {
    let beyond = failures.checked_sub(FREE_FAILURES)?;
    let shift = u32::try_from(beyond).ok()?.min(20);
    Some((1_i64 << shift).min(MAX_LOCK_SECS))
}

/// An account just locked: after how many wrong passwords in a row, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub failures: i32,
    pub secs: i64,
}

/// Counts a wrong password for `user_id` and locks the account when due (then answers
/// the lock).
pub async fn record_failure(
    connection: &mut PgConnection,
    user_id: i64,
) -> Result<Option<Locked>, sqlx::Error> {
    let failures: i32 = sqlx::query_scalar(
        "UPDATE users SET failed_sign_ins = failed_sign_ins + 1 WHERE id = $1 RETURNING failed_sign_ins",
    )
    .bind(user_id)
    .fetch_one(&mut *connection)
    .await?;
    let Some(secs) = lock_secs(failures) else {
        return Ok(None);
    };
    sqlx::query("UPDATE users SET locked_until = now() + make_interval(secs => $2) WHERE id = $1")
        .bind(user_id)
        .bind(secs as f64)
        .execute(&mut *connection)
        .await?;
    Ok(Some(Locked { failures, secs }))
}

/// Clears the count after a right password.
pub async fn record_success(
    connection: &mut PgConnection,
    user_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET failed_sign_ins = 0, locked_until = NULL \
         WHERE id = $1 AND (failed_sign_ins <> 0 OR locked_until IS NOT NULL)",
    )
    .bind(user_id)
    .execute(connection)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_doubles_from_the_sixth_failure_and_is_capped() {
        assert_eq!(lock_secs(4), None);
        assert_eq!(lock_secs(5), Some(1));
        assert_eq!(lock_secs(6), Some(2));
        assert_eq!(lock_secs(8), Some(8));
        assert_eq!(lock_secs(40), Some(MAX_LOCK_SECS));
    }

    #[test]
    fn an_address_has_its_own_budget() {
        let throttle = AddressThrottle::new(2);
        let one: IpAddr = [10, 0, 0, 1].into();
        assert!(throttle.check(one).is_ok());
        assert!(throttle.check(one).is_ok());
        assert!(throttle.check(one).unwrap_err() >= 1);
        assert!(throttle.check([10, 0, 0, 2].into()).is_ok());
    }

    #[test]
    fn an_ipv6_network_of_64_bits_shares_one_budget() {
        let throttle = AddressThrottle::new(2);
        let address = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(throttle.check(address("2001:db8:1:2::1")).is_ok());
        assert!(throttle.check(address("2001:db8:1:2:ffff:1:2:3")).is_ok());
        assert!(
            throttle.check(address("2001:db8:1:2::abcd")).is_err(),
            "a fresh address in the same /64 is the same client"
        );
        assert!(throttle.check(address("2001:db8:1:3::1")).is_ok());
        assert_eq!(
            address_key(address("2001:db8:1:2:aaaa::1")),
            address("2001:db8:1:2::")
        );
    }

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_address() {
        let throttle = AddressThrottle::new(1);
        assert!(throttle.check([192, 0, 2, 7].into()).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(throttle.check(mapped).is_err());
        assert_eq!(address_key(mapped), IpAddr::from([192, 0, 2, 7]));
        assert!(
            throttle.check([192, 0, 2, 8].into()).is_ok(),
            "IPv4 by the address"
        );
    }
}
