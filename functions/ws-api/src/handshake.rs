//! Where a WebSocket client's token is, and which subprotocol to answer with.
//!
//! Browsers cannot set headers on a WebSocket handshake, so the token travels as a
//! subprotocol: `new WebSocket(url, ["episodes.v1", "bearer." + token])`. API Gateway (and the
//! browser) then require the server to pick one of the offered protocols: we answer
//! `episodes.v1`, never the token. Clients that cannot offer subprotocols may send
//! `?token=...` instead (it then appears in URLs: prefer the subprotocol).

use http::HeaderMap;

/// The application protocol the server speaks.
pub const PROTOCOL: &str = "episodes.v1";
const TOKEN_PREFIX: &str = "bearer.";

/// The token offered, and the protocol to echo (when the client offered ours).
#[derive(Debug, PartialEq, Eq)]
pub struct Offer {
    pub token: Option<String>,
    pub echo: Option<&'static str>,
}

pub fn read_offer(headers: &HeaderMap, query_token: Option<&str>) -> Offer {
    let offered: Vec<&str> = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let from_protocol = offered
        .iter()
        .find_map(|p| p.strip_prefix(TOKEN_PREFIX))
        .filter(|t| !t.is_empty());
    Offer {
        token: from_protocol
            .or(query_token.filter(|t| !t.is_empty()))
            .map(str::to_owned),
        echo: offered.contains(&PROTOCOL).then_some(PROTOCOL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(protocols: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocols).unwrap(),
        );
        h
    }

    #[test]
    fn the_token_comes_from_the_subprotocol_and_only_ours_is_echoed() {
        let offer = read_offer(&headers("episodes.v1, bearer.aaa.bbb.ccc"), None);
        assert_eq!(offer.token.as_deref(), Some("aaa.bbb.ccc"));
        assert_eq!(offer.echo, Some("episodes.v1"));
        // The header wins over the query string.
        let offer = read_offer(&headers("bearer.x.y.z"), Some("q.q.q"));
        assert_eq!(offer.token.as_deref(), Some("x.y.z"));
        assert_eq!(offer.echo, None, "the token is never echoed");
    }

    #[test]
    fn the_query_string_is_the_fallback() {
        let offer = read_offer(&HeaderMap::new(), Some("q.q.q"));
        assert_eq!(offer.token.as_deref(), Some("q.q.q"));
        assert_eq!(read_offer(&HeaderMap::new(), Some("")).token, None);
        assert_eq!(read_offer(&headers("bearer."), None).token, None);
        assert_eq!(
            read_offer(&headers("chat"), None),
            Offer {
                token: None,
                echo: None
            }
        );
    }
}
