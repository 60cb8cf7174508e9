//! Building and reading H.225.0 UUIE bodies: identifiers, vendor, aliases, addresses, and the
//! fields every call-signalling UUIE shares (fast start, H.245 address, call identifier).

use std::net::{IpAddr, SocketAddr};

use crate::h323::asn::h323_messages as h225;
use crate::h323::asn::h323_messages::H323UUPDUH323MessageBody as Body;
use crate::h323::asn::rasn::types::{
    BmpString, FixedOctetString, Ia5String, ObjectIdentifier, OctetString,
};

/// The H.225.0 version we send: `{0 0 8 2250 0 4}`.
pub const H225_VERSION: u32 = 4;

/// `protocolIdentifier` of the version we send.
pub fn protocol_identifier() -> h225::ProtocolIdentifier {
    h225::ProtocolIdentifier(ObjectIdentifier::new_unchecked(
        vec![0, 0, 8, 2250, 0, H225_VERSION].into(),
    ))
}

/// The version number (last arc) of a `protocolIdentifier`.
pub fn version_of(p: &h225::ProtocolIdentifier) -> Option<u32> {
    p.0.as_ref().last().copied()
}

/// A 16-byte GUID (conferenceID, callIdentifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// As the ASN.1 type.
    pub fn to_asn(self) -> h225::GloballyUniqueID {
        h225::GloballyUniqueID(FixedOctetString::new(self.0))
    }

    /// From the ASN.1 type.
    pub fn from_asn(g: &h225::GloballyUniqueID) -> Self {
        let mut b = [0; 16];
        b.copy_from_slice(&g.0[..]);
        Guid(b)
    }

    /// As a `CallIdentifier`.
    pub fn call_identifier(self) -> h225::CallIdentifier {
        h225::CallIdentifier::new(self.to_asn())
    }

    /// As a `ConferenceIdentifier`.
    pub fn conference_id(self) -> h225::ConferenceIdentifier {
        h225::ConferenceIdentifier(self.to_asn())
    }
}

/// An endpoint's vendor identification (`VendorIdentifier`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vendor {
    /// T.35 country code.
    pub t35_country_code: u8,
    /// T.35 extension.
    pub t35_extension: u8,
    /// Manufacturer code.
    pub manufacturer_code: u16,
    /// Product name (trailing NULs removed).
    pub product: String,
    /// Version (trailing NULs removed).
    pub version: String,
}

impl Vendor {
    /// jonction's own identification (T.35 France, no registered manufacturer code).
    pub fn jonction() -> Self {
        Vendor {
            t35_country_code: 0x3d,
            t35_extension: 0,
            manufacturer_code: 0,
            product: "jonction".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    /// From the ASN.1 type.
    pub fn from_asn(v: &h225::VendorIdentifier) -> Self {
        let text = |b: &Option<OctetString>| {
            b.as_ref()
                .map(|b| String::from_utf8_lossy(b).trim_end_matches('\0').to_owned())
                .unwrap_or_default()
        };
        Vendor {
            t35_country_code: v.vendor.t35_country_code,
            t35_extension: v.vendor.t35_extension,
            manufacturer_code: v.vendor.manufacturer_code,
            product: text(&v.product_id),
            version: text(&v.version_id),
        }
    }

    /// As the ASN.1 type.
    pub fn to_asn(&self) -> h225::VendorIdentifier {
        let text = |s: &str| {
            let b = &s.as_bytes()[..s.len().min(256)];
            (!b.is_empty()).then(|| OctetString::from(b.to_vec()))
        };
        h225::VendorIdentifier::new(
            h225::H221NonStandard::new(
                self.t35_country_code,
                self.t35_extension,
                self.manufacturer_code,
            ),
            text(&self.product),
            text(&self.version),
            None,
        )
    }
}

/// Our `EndpointType`: a gateway with our vendor identification.
pub fn endpoint_type(vendor: &Vendor) -> h225::EndpointType {
    h225::EndpointType::new(
        None,
        Some(vendor.to_asn()),
        None,
        Some(h225::GatewayInfo::new(None, None)),
        None,
        None,
        false,
        false,
        None,
        None,
    )
}

/// The vendor of an `EndpointType`.
pub fn vendor_of(e: &h225::EndpointType) -> Option<Vendor> {
    e.vendor.as_ref().map(Vendor::from_asn)
}

/// An alias (`AliasAddress`) in the forms jonction routes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alias {
    /// `dialledDigits` (E.164 digits, `#`, `*`, `,`).
    Digits(String),
    /// `h323-ID` (BMP string).
    H323Id(String),
    /// `url-ID`.
    Url(String),
    /// `email-ID`.
    Email(String),
    /// `transportID`.
    Transport(SocketAddr),
    /// Another form (party number, mobile UIM, …), not interpreted.
    Other,
}

impl Alias {
    /// From the ASN.1 type.
    pub fn from_asn(a: &h225::AliasAddress) -> Self {
        use h225::AliasAddress as A;
        let ia5 = |s: &Ia5String| String::from_utf8_lossy(s.as_iso646_bytes()).into_owned();
        match a {
            A::dialledDigits(s) => Alias::Digits(ia5(s)),
            A::h323_ID(s) => Alias::H323Id(String::from_utf16_lossy(s)),
            A::url_ID(s) => Alias::Url(ia5(s)),
            A::email_ID(s) => Alias::Email(ia5(s)),
            A::transportID(t) => from_transport(t).map_or(Alias::Other, Alias::Transport),
            _ => Alias::Other,
        }
    }

    /// As the ASN.1 type; `None` for [`Alias::Other`], empty or invalid strings.
    pub fn to_asn(&self) -> Option<h225::AliasAddress> {
        use h225::AliasAddress as A;
        Some(match self {
            Alias::Digits(s) => {
                let d: String = s
                    .chars()
                    .filter(|c| c.is_ascii_digit() || matches!(c, '#' | '*' | ','))
                    .take(128)
                    .collect();
                if d.is_empty() {
                    return None;
                }
                A::dialledDigits(Ia5String::try_from(d.as_str()).ok()?)
            }
            Alias::H323Id(s) => {
                let mut b = BmpString::default();
                b.extend(s.encode_utf16().take(256));
                if b.is_empty() {
                    return None;
                }
                A::h323_ID(b)
            }
            Alias::Url(s) | Alias::Email(s) => {
                if s.is_empty() || s.len() > 512 || !s.is_ascii() {
                    return None;
                }
                let v = Ia5String::try_from(s.as_str()).ok()?;
                if matches!(self, Alias::Url(_)) {
                    A::url_ID(v)
                } else {
                    A::email_ID(v)
                }
            }
            Alias::Transport(a) => A::transportID(to_transport(*a)),
            Alias::Other => return None,
        })
    }
}

/// Aliases from an optional list.
pub fn aliases(list: &Option<Vec<h225::AliasAddress>>) -> Vec<Alias> {
    list.iter().flatten().map(Alias::from_asn).collect()
}

/// An optional alias list to send (`None` when empty).
pub fn alias_list(list: &[Alias]) -> Option<Vec<h225::AliasAddress>> {
    let v: Vec<_> = list.iter().filter_map(Alias::to_asn).collect();
    (!v.is_empty()).then_some(v)
}

/// An H.225.0 `TransportAddress` (IPv4/IPv6) as a socket address.
pub fn from_transport(t: &h225::TransportAddress) -> Option<SocketAddr> {
    match t {
        h225::TransportAddress::ipAddress(a) => {
            let o: [u8; 4] = a.ip.as_ref().try_into().ok()?;
            Some(SocketAddr::new(IpAddr::from(o), a.port))
        }
        h225::TransportAddress::ip6Address(a) => {
            let o: [u8; 16] = a.ip.as_ref().try_into().ok()?;
            Some(SocketAddr::new(IpAddr::from(o), a.port))
        }
        _ => None,
    }
}

/// A socket address as an H.225.0 `TransportAddress`.
pub fn to_transport(a: SocketAddr) -> h225::TransportAddress {
    match a.ip() {
        IpAddr::V4(ip) => h225::TransportAddress::ipAddress(h225::TransportAddressIpAddress::new(
            OctetString::from(ip.octets().to_vec()),
            a.port(),
        )),
        IpAddr::V6(ip) => {
            h225::TransportAddress::ip6Address(h225::TransportAddressIp6Address::new(
                OctetString::from(ip.octets().to_vec()),
                a.port(),
            ))
        }
    }
}

/// The fields of a response UUIE (CallProceeding, Alerting, Connect, Progress, Facility,
/// Information) that the call state machine looks at.
#[derive(Debug, Default)]
pub struct Common {
    /// `h245Address`.
    pub h245_address: Option<SocketAddr>,
    /// `fastStart` entries.
    pub fast_start: Option<Vec<OctetString>>,
    /// `fastConnectRefused` present.
    pub fast_connect_refused: bool,
    /// `destinationInfo`'s vendor.
    pub vendor: Option<Vendor>,
    /// `callIdentifier`.
    pub call_identifier: Option<Guid>,
}

/// Reads the [`Common`] fields of a body.
pub fn common(body: &Body) -> Common {
    let addr = |a: &Option<h225::TransportAddress>| a.as_ref().and_then(from_transport);
    let cid = |c: &Option<h225::CallIdentifier>| c.as_ref().map(|c| Guid::from_asn(&c.guid));
    match body {
        Body::callProceeding(b) => Common {
            h245_address: addr(&b.h245_address),
            fast_start: b.fast_start.clone(),
            fast_connect_refused: b.fast_connect_refused.is_some(),
            vendor: vendor_of(&b.destination_info),
            call_identifier: cid(&b.call_identifier),
        },
        Body::alerting(b) => Common {
            h245_address: addr(&b.h245_address),
            fast_start: b.fast_start.clone(),
            fast_connect_refused: b.fast_connect_refused.is_some(),
            vendor: vendor_of(&b.destination_info),
            call_identifier: cid(&b.call_identifier),
        },
        Body::connect(b) => Common {
            h245_address: addr(&b.h245_address),
            fast_start: b.fast_start.clone(),
            fast_connect_refused: b.fast_connect_refused.is_some(),
            vendor: vendor_of(&b.destination_info),
            call_identifier: cid(&b.call_identifier),
        },
        Body::progress(b) => Common {
            h245_address: addr(&b.h245_address),
            fast_start: b.fast_start.clone(),
            fast_connect_refused: b.fast_connect_refused.is_some(),
            vendor: vendor_of(&b.destination_info),
            call_identifier: Some(Guid::from_asn(&b.call_identifier.guid)),
        },
        Body::facility(b) => Common {
            h245_address: addr(&b.h245_address),
            fast_start: b.fast_start.clone(),
            fast_connect_refused: b.fast_connect_refused.is_some(),
            vendor: b.destination_info.as_ref().and_then(vendor_of),
            call_identifier: cid(&b.call_identifier),
        },
        Body::information(b) => Common {
            fast_start: b.fast_start.clone(),
            fast_connect_refused: b.fast_connect_refused.is_some(),
            call_identifier: cid(&b.call_identifier),
            ..Common::default()
        },
        _ => Common::default(),
    }
}

/// Display names (`displayName` of v7 UUIEs) as text.
pub fn display_name(list: &Option<Vec<h225::DisplayName>>) -> Option<String> {
    list.as_ref()?
        .first()
        .map(|d| String::from_utf16_lossy(&d.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_round_trip_and_bad_ones_are_dropped() {
        let list = [
            Alias::Digits("1234#".into()),
            Alias::H323Id("Salle été".into()),
            Alias::Url("h323:room@example.org".into()),
            Alias::Email("room@example.org".into()),
            Alias::Transport("192.0.2.7:1720".parse().expect("addr")),
            Alias::Digits("abc".into()),
            Alias::Url("é".into()),
            Alias::Other,
        ];
        let asn = alias_list(&list).expect("some");
        assert_eq!(asn.len(), 5);
        assert_eq!(aliases(&Some(asn)), list[..5].to_vec());
        assert_eq!(alias_list(&[Alias::Other]), None);
    }

    #[test]
    fn guids_vendor_and_version() {
        let g = Guid([7; 16]);
        assert_eq!(Guid::from_asn(&g.to_asn()), g);
        let v = Vendor::jonction();
        assert_eq!(vendor_of(&endpoint_type(&v)), Some(v));
        assert_eq!(version_of(&protocol_identifier()), Some(4));
        let a: SocketAddr = "[2001:db8::5]:1720".parse().expect("addr");
        assert_eq!(from_transport(&to_transport(a)), Some(a));
    }
}
