//! Q.850 cause values jonction sends or reads, and their H.225.0 `ReleaseCompleteReason`
//! equivalents (H.225.0 table 5).

use crate::h323::asn::h323_messages::ReleaseCompleteReason as R;

/// 3: no route to destination.
pub const NO_ROUTE: u8 = 3;
/// 16: normal call clearing.
pub const NORMAL_CLEARING: u8 = 16;
/// 17: user busy.
pub const USER_BUSY: u8 = 17;
/// 18: no user responding.
pub const NO_USER_RESPONDING: u8 = 18;
/// 19: no answer from user (user alerted).
pub const NO_ANSWER: u8 = 19;
/// 20: subscriber absent.
pub const SUBSCRIBER_ABSENT: u8 = 20;
/// 21: call rejected.
pub const CALL_REJECTED: u8 = 21;
/// 28: invalid number format (address incomplete).
pub const INVALID_NUMBER_FORMAT: u8 = 28;
/// 30: response to STATUS ENQUIRY.
pub const RESPONSE_TO_STATUS_ENQUIRY: u8 = 30;
/// 31: normal, unspecified.
pub const NORMAL_UNSPECIFIED: u8 = 31;
/// 34: no circuit/channel available.
pub const NO_CIRCUIT: u8 = 34;
/// 38: network out of order.
pub const NETWORK_OUT_OF_ORDER: u8 = 38;
/// 41: temporary failure.
pub const TEMPORARY_FAILURE: u8 = 41;
/// 42: switching equipment congestion.
pub const CONGESTION: u8 = 42;
/// 47: resource unavailable, unspecified.
pub const RESOURCE_UNAVAILABLE: u8 = 47;
/// 81: invalid call reference value.
pub const INVALID_CALL_REFERENCE: u8 = 81;
/// 88: incompatible destination.
pub const INCOMPATIBLE_DESTINATION: u8 = 88;
/// 95: invalid message, unspecified.
pub const INVALID_MESSAGE: u8 = 95;
/// 96: mandatory information element is missing.
pub const MANDATORY_IE_MISSING: u8 = 96;
/// 97: message type non-existent or not implemented.
pub const MESSAGE_TYPE_NON_EXISTENT: u8 = 97;
/// 100: invalid information element contents.
pub const INVALID_IE_CONTENTS: u8 = 100;
/// 101: message not compatible with call state.
pub const MESSAGE_NOT_COMPATIBLE: u8 = 101;
/// 102: recovery on timer expiry.
pub const TIMER_EXPIRY: u8 = 102;
/// 111: protocol error, unspecified.
pub const PROTOCOL_ERROR: u8 = 111;

/// The `ReleaseCompleteReason` sent along with a Q.850 cause.
pub fn reason_for(cause: u8) -> R {
    match cause {
        NO_ROUTE | 1 => R::unreachableDestination(()),
        NORMAL_CLEARING | CALL_REJECTED => R::destinationRejection(()),
        USER_BUSY => R::inConf(()),
        SUBSCRIBER_ABSENT => R::calledPartyNotRegistered(()),
        INVALID_NUMBER_FORMAT => R::badFormatAddress(()),
        NO_CIRCUIT => R::noBandwidth(()),
        NETWORK_OUT_OF_ORDER => R::unreachableGatekeeper(()),
        TEMPORARY_FAILURE => R::adaptiveBusy(()),
        CONGESTION => R::gatewayResources(()),
        RESOURCE_UNAVAILABLE => R::gatekeeperResources(()),
        INCOMPATIBLE_DESTINATION => R::invalidRevision(()),
        111 => R::noPermission(()),
        _ => R::undefinedReason(()),
    }
}

/// The Q.850 cause a `ReleaseCompleteReason` stands for, when a ReleaseComplete has no
/// Cause IE.
pub fn cause_for(reason: &R) -> u8 {
    match reason {
        R::noBandwidth(()) => NO_CIRCUIT,
        R::gatekeeperResources(()) | R::newConnectionNeeded(()) => RESOURCE_UNAVAILABLE,
        R::unreachableDestination(()) => NO_ROUTE,
        R::destinationRejection(()) | R::facilityCallDeflection(()) => NORMAL_CLEARING,
        R::invalidRevision(()) => INCOMPATIBLE_DESTINATION,
        R::noPermission(()) => 111,
        R::unreachableGatekeeper(()) => NETWORK_OUT_OF_ORDER,
        R::gatewayResources(()) => CONGESTION,
        R::badFormatAddress(()) => INVALID_NUMBER_FORMAT,
        R::adaptiveBusy(()) => TEMPORARY_FAILURE,
        R::inConf(()) => USER_BUSY,
        R::calledPartyNotRegistered(()) => SUBSCRIBER_ABSENT,
        _ => NORMAL_UNSPECIFIED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_map_back_to_their_causes() {
        for c in [
            NO_ROUTE,
            NORMAL_CLEARING,
            USER_BUSY,
            SUBSCRIBER_ABSENT,
            INVALID_NUMBER_FORMAT,
            NO_CIRCUIT,
            NETWORK_OUT_OF_ORDER,
            TEMPORARY_FAILURE,
            CONGESTION,
            RESOURCE_UNAVAILABLE,
            INCOMPATIBLE_DESTINATION,
            111,
        ] {
            assert_eq!(cause_for(&reason_for(c)), c, "cause {c}");
        }
        assert_eq!(reason_for(TIMER_EXPIRY), R::undefinedReason(()));
        assert_eq!(cause_for(&R::undefinedReason(())), NORMAL_UNSPECIFIED);
    }
}
