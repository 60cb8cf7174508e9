//! ASN.1 types of H.225.0 v7 (`H323-MESSAGES`, with RAS), H.235 (`H235-SECURITY-MESSAGES`)
//! and H.245 v15 (`MULTIMEDIA-SYSTEM-CONTROL`), with their aligned-PER codecs from `rasn`.
//!
//! A crate of its own so that its 550 KB of generated derives build once, not with every
//! change to jonction. `src/generated.rs` is produced by rasn-compiler 0.16 from
//! `modules/*.asn` and committed; normal builds never run the compiler. Regenerate it with
//! `integration/gen-asn1.sh` after changing a module, never edit it by hand.
//!
//! What the copies and the generation change, and why:
//! - The H.235 and H.245 copies rename the type names they share with H.225.0
//!   (`NonStandardParameter`, `TransportAddress`, …) because the compiler puts all modules in
//!   one namespace: `H245TransportAddress`, `H235NonStandardParameter`, … (see the
//!   `-- CHANGED:` lines at the top of each module).
//! - Every mandatory SEQUENCE extension addition is OPTIONAL in our copies
//!   (`integration/asn1-optional-additions.py`): older endpoints (H.225.0 v2–v4) leave out
//!   fields that later versions made mandatory, and rasn rejects those PDUs otherwise
//!   ("Extension … required, but not present"). PER flags every addition in the extension
//!   bitmap anyway, so no encoding changes.
//! - Constrained named types (`EndpointIdentifier ::= BMPString (SIZE(1..128))`,
//!   `TimeToLive`, `TBCD-STRING`, …) get their codecs from [`constrained_delegate!`] instead
//!   of rasn's derive (`integration/asn1-constrained-delegates.py`): the derived ones lose the
//!   type's constraints when the type is an extension addition or an OPTIONAL field with
//!   constraints of its own, and then misread RAS messages from real gatekeepers.
//!
//! Lints are off for the generated file only: its names follow ASN.1
//! (`H323_UserInformation`, fields like `r#type`), and it has many large enums and unused
//! items that clippy would flag.

pub use rasn;

/// Aligned-PER codecs for a constrained delegate type `$name(pub $inner)` that always apply
/// `$name`'s own constraints (`AsnType::CONSTRAINTS`, from its `#[rasn(...)]` attributes),
/// intersected with those the caller passes.
#[macro_export]
macro_rules! constrained_delegate {
    ($name:ident, $inner:ty) => {
        impl $crate::rasn::Decode for $name {
            fn decode_with_tag_and_constraints<D: $crate::rasn::Decoder>(
                decoder: &mut D,
                tag: $crate::rasn::types::Tag,
                constraints: &$crate::rasn::types::Constraints,
            ) -> Result<Self, D::Error> {
                let own = <Self as $crate::rasn::AsnType>::CONSTRAINTS.intersect(*constraints);
                <$inner as $crate::rasn::Decode>::decode_with_tag_and_constraints(
                    decoder, tag, &own,
                )
                .map(Self)
            }
        }

        impl $crate::rasn::Encode for $name {
            fn encode_with_tag_and_constraints<'b, E: $crate::rasn::Encoder<'b>>(
                &self,
                encoder: &mut E,
                tag: $crate::rasn::types::Tag,
                constraints: &$crate::rasn::types::Constraints,
                identifier: $crate::rasn::types::Identifier,
            ) -> Result<(), E::Error> {
                let own = <Self as $crate::rasn::AsnType>::CONSTRAINTS.intersect(*constraints);
                self.0
                    .encode_with_tag_and_constraints(encoder, tag, &own, identifier)
            }
        }
    };
}

#[rustfmt::skip]
#[allow(
    warnings,
    clippy::all,
    clippy::pedantic,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unused,
    missing_docs
)]
mod generated;

pub use generated::*;
