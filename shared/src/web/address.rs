//! The source address of a request (API.md, "Conventions"), as the throttles count it: API
//! Gateway's `requestContext.http.sourceIp`, which the local server fills with the TCP peer, so
//! every way of running the API reads one field. A header the client sets is believed only
//! behind a proxy named by `TRUSTED_PROXY_CIDRS`: then the rightmost `X-Forwarded-For` entry
//! that is not such a proxy. IPv4-mapped IPv6 addresses count as their IPv4 address, IPv6
//! addresses per /64 (one host is routinely given a whole /64), and a request with no known
//! address under one shared `unknown` bucket.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription,
};
pub use lambda_http::request::RequestContext;

use crate::state::AppState;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The bucket a request's failures count under: an IPv4 address, an IPv6 /64, or `unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceAddress(String);

impl SourceAddress {
    pub const UNKNOWN: &'static str = "unknown";

    /// The bucket of `ip`.
    pub fn of(ip: Option<IpAddr>) -> Self {
        let Some(ip) = ip else {
            return Self(Self::UNKNOWN.to_owned());
        };
        Self(match ip.to_canonical() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        })
    }

    /// The address a request comes from: the API Gateway request context's `sourceIp`, and the
    /// forwarded chain only when that is a trusted proxy.
    pub fn resolve(context: Option<&RequestContext>, headers: &HeaderMap, trusted: &[IpNet]) -> Self {
        let peer = context.and_then(|context| match context {
            RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref(),
            #[allow(unreachable_patterns)]
            _ => None,
        });
        let peer = peer.and_then(|ip| ip.trim().parse::<IpAddr>().ok()).map(|ip| ip.to_canonical());
        Self::of(peer.and_then(|peer| forwarded_client(peer, headers, trusted)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared bucket of requests with no known address: nobody's address, so never one an
    /// account is remembered at.
    pub fn is_unknown(&self) -> bool {
        self.0 == Self::UNKNOWN
    }
}

/// The client behind `peer`: `peer` itself unless it is a trusted proxy; then, walking
/// `X-Forwarded-For` from the right (each proxy appends the address it was reached from), the
/// first entry that is not a trusted proxy. Entries to the left of it were written by the client
/// and are never read, whatever bytes they hold. An entry the walk reaches that is not an
/// address (with or without a port: `1.2.3.4:80`, `[2001:db8::1]:80`) makes the client unknown.
fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let lines: Vec<&[u8]> = headers.get_all(&X_FORWARDED_FOR).iter().map(|v| v.as_bytes()).collect();
    let hops = lines.iter().flat_map(|line| line.split(|b| *b == b',')).rev();
    let mut client = peer;
    for hop in hops {
        client = hop_address(hop)?;
        if !is_trusted(&client) {
            return Some(client);
        }
    }
    // Every hop a trusted proxy: the leftmost one is as far as the chain goes.
    Some(client)
}

/// One `X-Forwarded-For` entry as an address: an IP, an IP with a port, or a bracketed IPv6.
fn hop_address(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?.trim();
    let bare = hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(hop);
    let ip = bare.parse::<IpAddr>().or_else(|_| hop.parse::<std::net::SocketAddr>().map(|s| s.ip())).ok()?;
    Some(ip.to_canonical())
}

/// The request context API Gateway would give a request from `source_ip`: what the local
/// server (the TCP peer) and in-process tests put into a request's extensions, so the routers
/// read the address the same way everywhere.
pub fn context_with_source_ip(source_ip: &str) -> RequestContext {
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.source_ip = Some(source_ip.to_owned());
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http = http;
    RequestContext::ApiGatewayV2(context)
}

impl FromRequestParts<AppState> for SourceAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let context = parts.extensions.get::<RequestContext>();
        Ok(Self::resolve(context, &parts.headers, &state.config.trusted_proxies))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(source_ip: &str) -> RequestContext {
        super::context_with_source_ip(source_ip)
    }

    fn headers(forwarded: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append(&X_FORWARDED_FOR, value.parse().expect("header value"));
        }
        headers
    }

    fn resolve(source_ip: Option<&str>, forwarded: &[&str], trusted: &[&str]) -> String {
        let trusted: Vec<IpNet> = trusted.iter().map(|n| n.parse().expect("cidr")).collect();
        let context = source_ip.map(context);
        SourceAddress::resolve(context.as_ref(), &headers(forwarded), &trusted).as_str().to_owned()
    }

    #[test]
    fn the_source_ip_is_the_address_and_headers_are_ignored_without_trusted_proxies() {
        assert_eq!(resolve(Some("203.0.113.9"), &["198.51.100.1"], &[]), "203.0.113.9");
        assert_eq!(resolve(None, &["198.51.100.1"], &[]), "unknown");
        assert_eq!(resolve(Some("not an address"), &[], &[]), "unknown");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(resolve(Some("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), &[], &[]), "2001:db8:1:2::/64");
        assert_eq!(resolve(Some("2001:db8:1:2::1"), &[], &[]), "2001:db8:1:2::/64");
        assert_eq!(resolve(Some("::ffff:203.0.113.9"), &[], &[]), "203.0.113.9");
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_forwarded_entry_is_the_address() {
        let trusted = ["10.0.0.0/8"];
        // The client wrote the first entry itself: it is never believed.
        let chain = ["6.6.6.6, 203.0.113.9, 10.1.1.1"];
        assert_eq!(resolve(Some("10.0.0.5"), &chain, &trusted), "203.0.113.9");
        // Two header lines are one list.
        assert_eq!(resolve(Some("10.0.0.5"), &["6.6.6.6", "203.0.113.9"], &trusted), "203.0.113.9");
        // A peer that is not a trusted proxy is the address, whatever it forwards.
        assert_eq!(resolve(Some("198.51.100.7"), &chain, &trusted), "198.51.100.7");
        // A trusted proxy that forwards nothing is the address; a broken entry is unknown.
        assert_eq!(resolve(Some("10.0.0.5"), &[], &trusted), "10.0.0.5");
        assert_eq!(resolve(Some("10.0.0.5"), &["203.0.113.9, garbage"], &trusted), "unknown");
        assert_eq!(resolve(Some("10.0.0.5"), &["2001:db8::1"], &trusted), "2001:db8::/64");
        // Ports, as some proxies write them, are no part of the address.
        assert_eq!(resolve(Some("10.0.0.5"), &["203.0.113.9:4711"], &trusted), "203.0.113.9");
        assert_eq!(resolve(Some("10.0.0.5"), &["[2001:db8::1]:443"], &trusted), "2001:db8::/64");
        assert_eq!(resolve(Some("10.0.0.5"), &["[2001:db8::1]"], &trusted), "2001:db8::/64");
    }

    #[test]
    fn what_the_client_wrote_left_of_the_client_is_never_read() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("cidr")];
        let mut headers = HeaderMap::new();
        let client_written = axum::http::HeaderValue::from_bytes(b"\xff\xfe not even text, 203.0.113.9")
            .expect("a header value of opaque bytes");
        headers.append(&X_FORWARDED_FOR, client_written);
        let context = context("10.0.0.5");
        let address = SourceAddress::resolve(Some(&context), &headers, &trusted);
        assert_eq!(address.as_str(), "203.0.113.9");
        assert!(!address.is_unknown());
    }
}
