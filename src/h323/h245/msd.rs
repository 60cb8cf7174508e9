//! MasterSlaveDetermination (H.245 §8.2, the determination rules of §C.2).

/// Terminal type of a gateway (H.323 Table 1).
pub const TERMINAL_TYPE_GATEWAY: u8 = 60;

const MODULUS: u32 = 1 << 24;
const HALF: u32 = 1 << 23;

/// Our role once MSD is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We are master.
    Master,
    /// We are slave.
    Slave,
}

impl Role {
    /// The other role.
    pub fn opposite(self) -> Role {
        match self {
            Role::Master => Role::Slave,
            Role::Slave => Role::Master,
        }
    }
}

/// Outcome of comparing our (terminalType, statusDeterminationNumber) with the peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Determination {
    /// Our role.
    Decided(Role),
    /// Same type and numbers that cannot decide (equal, or 2^23 apart).
    Indeterminate,
}

/// H.245 §C.2: the higher terminal type is master; with equal types, the local terminal is
/// master when `(remote - local) mod 2^24` is in `1..2^23`, slave when above 2^23, and the
/// result is indeterminate at 0 and 2^23.
pub fn determine(
    local_type: u8,
    local_sdn: u32,
    remote_type: u8,
    remote_sdn: u32,
) -> Determination {
    if local_type != remote_type {
        return Determination::Decided(if local_type > remote_type {
            Role::Master
        } else {
            Role::Slave
        });
    }
    let diff = (remote_sdn.wrapping_sub(local_sdn)) % MODULUS;
    match diff {
        0 | HALF => Determination::Indeterminate,
        d if d < HALF => Determination::Decided(Role::Master),
        _ => Determination::Decided(Role::Slave),
    }
}

/// The MSD procedure's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MsdState {
    /// Nothing sent or received yet (or failed).
    Idle,
    /// We sent MSD, awaiting the peer's Ack/Reject/MSD.
    OutgoingAwaitingResponse,
    /// We answered the peer's MSD with an Ack, awaiting its Ack.
    IncomingAwaitingResponse(Role),
    /// Determined.
    Done(Role),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_terminal_type_wins() {
        assert_eq!(
            determine(60, 5, 50, 9),
            Determination::Decided(Role::Master)
        );
        assert_eq!(determine(50, 5, 60, 1), Determination::Decided(Role::Slave));
        // A room (50) against callgen323's 0 in the capture.
        assert_eq!(
            determine(0, 9_588_693, 50, 1),
            Determination::Decided(Role::Slave)
        );
    }

    #[test]
    fn equal_types_compare_numbers_modulo_2_24() {
        // remote - local = 1 → local master.
        assert_eq!(
            determine(60, 10, 60, 11),
            Determination::Decided(Role::Master)
        );
        // remote - local = -1 ≡ 2^24 - 1 → local slave.
        assert_eq!(
            determine(60, 11, 60, 10),
            Determination::Decided(Role::Slave)
        );
        // Just under / over 2^23.
        assert_eq!(
            determine(60, 0, 60, HALF - 1),
            Determination::Decided(Role::Master)
        );
        assert_eq!(
            determine(60, 0, 60, HALF + 1),
            Determination::Decided(Role::Slave)
        );
        // Wrap-around: local near the top, remote small.
        assert_eq!(
            determine(60, MODULUS - 2, 60, 3),
            Determination::Decided(Role::Master)
        );
    }

    #[test]
    fn identical_or_half_apart_is_indeterminate() {
        assert_eq!(determine(60, 77, 60, 77), Determination::Indeterminate);
        assert_eq!(determine(60, 5, 60, 5 + HALF), Determination::Indeterminate);
        assert_eq!(determine(60, 5 + HALF, 60, 5), Determination::Indeterminate);
    }

    #[test]
    fn both_sides_agree() {
        for (a, b) in [(1u32, 2u32), (123_456, 9_999_999), (16_000_000, 42)] {
            let ours = determine(60, a, 60, b);
            let theirs = determine(60, b, 60, a);
            match (ours, theirs) {
                (Determination::Decided(x), Determination::Decided(y)) => {
                    assert_eq!(x, y.opposite())
                }
                other => panic!("undecided {other:?}"),
            }
        }
    }
}
