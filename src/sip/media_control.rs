//! Video fast update over SIP INFO (RFC 5168, `application/media_control+xml`): what room systems
//! that ignore RTCP PLI/FIR use to ask for, and answer, keyframe requests.
//!
//! Only the one primitive the RFC defines is understood: `picture_fast_update` sent to the
//! encoder. Parsing is deliberately lenient about whitespace, the XML declaration, namespaces
//! and an optional `stream_id`, and strict about the element path, without an XML library: the
//! body is small and untrusted, and nothing else in it matters.

/// The content type of RFC 5168 bodies.
pub const CONTENT_TYPE: &str = "application/media_control+xml";

/// The body asking the peer's encoder for a keyframe.
pub const PICTURE_FAST_UPDATE: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\r\n\
<media_control>\r\n\
  <vc_primitive>\r\n\
    <to_encoder>\r\n\
      <picture_fast_update/>\r\n\
    </to_encoder>\r\n\
  </vc_primitive>\r\n\
</media_control>\r\n";

/// Bodies larger than this are not media control requests worth reading.
const MAX_BODY: usize = 4096;

/// Why an INFO body is not a fast update request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaControlError {
    /// Another content type.
    #[error("not application/media_control+xml")]
    ContentType,
    /// The body is not a `picture_fast_update` request (or is too large).
    #[error("not a picture_fast_update request")]
    NotFastUpdate,
}

/// Whether an INFO with `content_type` and `body` asks for a keyframe (RFC 5168 §3).
pub fn is_picture_fast_update(content_type: &str, body: &[u8]) -> Result<(), MediaControlError> {
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if !mime.eq_ignore_ascii_case(CONTENT_TYPE) {
        return Err(MediaControlError::ContentType);
    }
    if body.len() > MAX_BODY {
        return Err(MediaControlError::NotFastUpdate);
    }
    let text = std::str::from_utf8(body).map_err(|_| MediaControlError::NotFastUpdate)?;
    // Element names in document order, without prefixes, attributes or closing tags.
    let names: Vec<&str> = text
        .split('<')
        .skip(1)
        .filter(|t| !t.starts_with('/') && !t.starts_with('?') && !t.starts_with('!'))
        .filter_map(|t| {
            let name = t
                .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .next()?;
            Some(name.rsplit(':').next().unwrap_or(name))
        })
        .collect();
    let path = [
        "media_control",
        "vc_primitive",
        "to_encoder",
        "picture_fast_update",
    ];
    let mut at = 0;
    for n in names {
        if at < path.len() && n.eq_ignore_ascii_case(path[at]) {
            at += 1;
        }
    }
    if at == path.len() {
        Ok(())
    } else {
        Err(MediaControlError::NotFastUpdate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_request_and_vendor_variants_are_recognised() {
        assert_eq!(
            is_picture_fast_update(CONTENT_TYPE, PICTURE_FAST_UPDATE.as_bytes()),
            Ok(())
        );
        // No declaration, one line, a stream_id, a charset parameter.
        let compact = b"<media_control><vc_primitive><to_encoder><picture_fast_update></picture_fast_update></to_encoder><stream_id>1</stream_id></vc_primitive></media_control>";
        assert_eq!(
            is_picture_fast_update("Application/Media_Control+XML; charset=utf-8", compact),
            Ok(())
        );
    }

    #[test]
    fn other_bodies_are_refused() {
        assert_eq!(
            is_picture_fast_update("application/dtmf-relay", b"Signal=1"),
            Err(MediaControlError::ContentType)
        );
        for body in [
            &b"<media_control><general_error>oops</general_error></media_control>"[..],
            b"<media_control><vc_primitive><to_decoder><picture_fast_update/></to_decoder></vc_primitive></media_control>",
            b"picture_fast_update",
            b"\xff\xfe<media_control>",
            b"",
        ] {
            assert_eq!(
                is_picture_fast_update(CONTENT_TYPE, body),
                Err(MediaControlError::NotFastUpdate),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let huge = format!("{}{}", " ".repeat(MAX_BODY), PICTURE_FAST_UPDATE);
        assert!(is_picture_fast_update(CONTENT_TYPE, huge.as_bytes()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = is_picture_fast_update(CONTENT_TYPE, &body);
        }
    }
}
