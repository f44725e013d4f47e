//! Where the proxy is.

use std::fmt;

use crate::Error;

/// The proxy's base URL: `https://<host>[:<port>]`, KMS's `XksProxyUriEndpoint`.
///
/// KMS allows no port (the proxy listens on 443) and only DNS names; this type also
/// accepts a port, an IP address and `http://`, so tests and the conformance tester can
/// reach proxies on loopback. The URI path (`XksProxyUriPath`) is not part of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    scheme: Scheme,
    host: String,
    port: Option<u16>,
}

/// `https` or `http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// HTTPS, the only scheme KMS uses.
    Https,
    /// Plain HTTP, for proxies started with `insecure_plain_http` in tests.
    Http,
}

// === impl Endpoint ===

impl Endpoint {
    /// Parses `https://host`, `https://host:port` or `http://…`. A trailing `/` is
    /// tolerated; any other path, a query or user information is an error.
    ///
    /// ```
    /// let endpoint = xks_client::Endpoint::parse("https://xks.example.com")?;
    /// assert_eq!(endpoint.host(), "xks.example.com");
    /// assert_eq!(endpoint.port(), 443);
    /// assert_eq!(endpoint.url("/kms/xks/v1/health"), "https://xks.example.com/kms/xks/v1/health");
    /// # Ok::<(), xks_client::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::config(format!("endpoint {text:?}: {why}"));
        let uri: http::Uri = text
            .parse()
            .map_err(|e| Error::config_with(format!("endpoint {text:?} is not a URL"), e))?;
        let scheme = match uri.scheme_str() {
            Some("https") => Scheme::Https,
            Some("http") => Scheme::Http,
            Some(_) => return Err(bad("the scheme must be https (or http for tests)")),
            None => return Err(bad("expected https://<host>")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user information is not allowed"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad(
                "the endpoint has no path; put the path in the URI path setting",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Self {
            scheme,
            host,
            port: authority.port_u16(),
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host name or IP address (without brackets), which is also the TLS server name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port: the explicit one, or 443 (80 for `http`).
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.scheme {
            Scheme::Https => 443,
            Scheme::Http => 80,
        })
    }

    /// The explicit port, if the URL had one.
    pub fn explicit_port(&self) -> Option<u16> {
        self.port
    }

    /// The `Host` header value: the host, plus the port if it is not the scheme's
    /// default. This is what SigV4 signs as `host`.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) if port != self.default_port() => format!("{host}:{port}"),
            _ => host,
        }
    }

    /// The absolute URL of `path_and_query` (which starts with `/`) on this endpoint.
    pub fn url(&self, path_and_query: &str) -> String {
        let scheme = match self.scheme {
            Scheme::Https => "https",
            Scheme::Http => "http",
        };
        format!("{scheme}://{}{path_and_query}", self.authority())
    }

    fn default_port(&self) -> u16 {
        match self.scheme {
            Scheme::Https => 443,
            Scheme::Http => 80,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url(""))
    }
}

impl std::str::FromStr for Endpoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}
