//! OAuth 1.0a request signing with HMAC-SHA1 (RFC 5849 §3), as Apple's
//! device enrollment service requires on `GET /session` ("Authenticating
//! with the Automated Device Enrollment program"). Pure functions: the
//! caller supplies the timestamp and the nonce.

use base64::Engine;
use url::Url;

/// The four secrets of a signed request (RFC 5849 §3.1): the client's
/// (consumer) credentials and the token credentials.
#[derive(Clone, Copy)]
pub struct OAuthCredentials<'a> {
    pub consumer_key: &'a str,
    pub consumer_secret: &'a str,
    pub token: &'a str,
    pub token_secret: &'a str,
}

impl std::fmt::Debug for OAuthCredentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthCredentials")
            .field("consumer_key", &self.consumer_key)
            .finish_non_exhaustive()
    }
}

/// RFC 5849 §3.6: every octet of the UTF-8 text but the unreserved
/// characters (ALPHA, DIGIT, `-`, `.`, `_`, `~`) becomes `%XX`, upper-case.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// RFC 5849 §3.4.1.2: scheme and host in lower case, the port only when it
/// is not the scheme's default, the path, no query.
pub fn base_string_uri(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{host}{port}{}",
        url.scheme().to_ascii_lowercase(),
        url.path()
    )
}

/// RFC 5849 §3.4.1: the method, the base string URI and the normalised
/// parameters (§3.4.1.3.2: the URL's query parameters and `params`, each
/// name and value encoded, sorted by name then value, joined with `=` and
/// `&`), each encoded and joined with `&`. `params` are decoded values
/// (protocol parameters without `oauth_signature`, form body parameters).
pub fn signature_base_string(method: &str, url: &Url, params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = url
        .query_pairs()
        .map(|(name, value)| (percent_encode(&name), percent_encode(&value)))
        .chain(
            params
                .iter()
                .map(|(name, value)| (percent_encode(name), percent_encode(value))),
        )
        .collect();
    encoded.sort();
    let normalized = encoded
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        percent_encode(&base_string_uri(url)),
        percent_encode(&normalized)
    )
}

/// RFC 5849 §3.4.2: base64 of HMAC-SHA1 over the base string, keyed with
/// the encoded consumer secret and token secret joined by `&`.
pub fn hmac_sha1_signature(base_string: &str, consumer_secret: &str, token_secret: &str) -> String {
    let key = format!(
        "{}&{}",
        percent_encode(consumer_secret),
        percent_encode(token_secret)
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key.as_bytes());
    let tag = ring::hmac::sign(&key, base_string.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// The protocol parameters of a request signed at `timestamp` (Unix
/// seconds) with `nonce`, `oauth_signature` last.
pub fn signed_parameters(
    method: &str,
    url: &Url,
    credentials: &OAuthCredentials<'_>,
    timestamp: i64,
    nonce: &str,
) -> Vec<(String, String)> {
    let mut params = vec![
        (
            "oauth_consumer_key".to_owned(),
            credentials.consumer_key.to_owned(),
        ),
        ("oauth_token".to_owned(), credentials.token.to_owned()),
        ("oauth_signature_method".to_owned(), "HMAC-SHA1".to_owned()),
        ("oauth_timestamp".to_owned(), timestamp.to_string()),
        ("oauth_nonce".to_owned(), nonce.to_owned()),
        ("oauth_version".to_owned(), "1.0".to_owned()),
    ];
    let base = signature_base_string(method, url, &params);
    let signature =
        hmac_sha1_signature(&base, credentials.consumer_secret, credentials.token_secret);
    params.push(("oauth_signature".to_owned(), signature));
    params
}

/// RFC 5849 §3.5.1: `OAuth realm="…", name="encoded value", …`. The realm
/// is not signed (§3.4.1.3.1).
pub fn authorization_header(realm: &str, params: &[(String, String)]) -> String {
    let mut header = format!("OAuth realm=\"{}\"", realm.replace(['"', '\\'], ""));
    for (name, value) in params {
        header.push_str(&format!(
            ", {}=\"{}\"",
            percent_encode(name),
            percent_encode(value)
        ));
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// RFC 5849 §3.4.1.1: the example request's base string, with its form
    /// body parameters `c2` and `a3=2 q` and its protocol parameters.
    #[test]
    fn the_rfc_base_string_example() {
        let url = Url::parse("http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b").unwrap();
        let params = pairs(&[
            ("c2", ""),
            ("a3", "2 q"),
            ("oauth_consumer_key", "9djdj82h48djs9d2"),
            ("oauth_token", "kkk9d7dh3k39sjv7"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "7d8f3e4a"),
        ]);
        assert_eq!(
            signature_base_string("POST", &url, &params),
            "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q\
             %26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_\
             key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m\
             ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk\
             9d7dh3k39sjv7"
        );
    }

    /// RFC 5849 §1.2: the photo request and its signature.
    #[test]
    fn the_rfc_photo_request_signature() {
        let url =
            Url::parse("http://photos.example.net/photos?file=vacation.jpg&size=original").unwrap();
        let params = pairs(&[
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
            ("oauth_token", "nnch734d00sl2jdk"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131202"),
            ("oauth_nonce", "chapoH"),
        ]);
        let base = signature_base_string("GET", &url, &params);
        assert_eq!(
            base,
            "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26\
             oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3DchapoH%26oauth_\
             signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131202%26oauth_tok\
             en%3Dnnch734d00sl2jdk%26size%3Doriginal"
        );
        let signature = hmac_sha1_signature(&base, "kd94hf93k423kf44", "pfkkdhi9sl3r4s00");
        assert_eq!(signature, "MdpQcU8iPSUjWoN/UDMsK2sui9I=");
        // §3.5.1 puts it in the header encoded.
        let header = authorization_header("Photos", &[("oauth_signature".to_owned(), signature)]);
        assert_eq!(
            header,
            "OAuth realm=\"Photos\", oauth_signature=\"MdpQcU8iPSUjWoN%2FUDMsK2sui9I%3D\""
        );
    }

    #[test]
    fn the_base_string_uri_drops_default_ports_and_lowercases() {
        let url = Url::parse("HTTP://EXAMPLE.COM:80/r%20v/X?id=123").unwrap();
        assert_eq!(base_string_uri(&url), "http://example.com/r%20v/X");
        let url = Url::parse("https://www.example.net:8080/?q=1").unwrap();
        assert_eq!(base_string_uri(&url), "https://www.example.net:8080/");
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(
            percent_encode("Ladies + Gentlemen"),
            "Ladies%20%2B%20Gentlemen"
        );
        assert_eq!(
            percent_encode("An encoded string!"),
            "An%20encoded%20string%21"
        );
        assert_eq!(
            percent_encode("Dogs, Cats & Mice"),
            "Dogs%2C%20Cats%20%26%20Mice"
        );
        assert_eq!(percent_encode("☃"), "%E2%98%83");
        assert_eq!(percent_encode("a-b.c_d~e"), "a-b.c_d~e");
    }

    #[test]
    fn signed_parameters_carry_a_signature_over_the_others() {
        let url = Url::parse("https://mdmenrollment.apple.com/session").unwrap();
        let credentials = OAuthCredentials {
            consumer_key: "CK_1",
            consumer_secret: "CS_1",
            token: "AT_1",
            token_secret: "AS_1",
        };
        let params = signed_parameters("GET", &url, &credentials, 1_700_000_000, "abc");
        let (last, unsigned) = params.split_last().unwrap();
        assert_eq!(last.0, "oauth_signature");
        let base = signature_base_string("GET", &url, unsigned);
        assert_eq!(last.1, hmac_sha1_signature(&base, "CS_1", "AS_1"));
        assert!(format!("{credentials:?}").contains("CK_1"));
        assert!(!format!("{credentials:?}").contains("CS_1"));
    }
}
