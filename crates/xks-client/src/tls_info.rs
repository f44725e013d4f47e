//! What a TLS handshake negotiated, and what the server certificate says.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::CipherSuite;

use crate::time::format_rfc3339;

/// The cipher suites the XKS spec accepts (fact sheet §1.1).
const SPEC_SUITES: [CipherSuite; 4] = [
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
];

/// What one TLS connection negotiated: version, cipher suite, ALPN protocol, and the
/// certificates the server presented. Every answer received on the connection carries it
/// (see [`RawResponse::tls`](crate::RawResponse::tls)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    version: &'static str,
    cipher_suite: String,
    spec_suite: bool,
    alpn: Option<String>,
    peer_certificates: Vec<Vec<u8>>,
}

/// The fields of a certificate a person checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    subject: String,
    issuer: String,
    serial: String,
    dns_names: Vec<String>,
    ip_addresses: Vec<String>,
    not_before: i64,
    not_after: i64,
}

// === impl TlsInfo ===

impl TlsInfo {
    pub(crate) fn from_connection(conn: &rustls::ClientConnection) -> Self {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            Some(_) => "other",
            None => "unknown",
        };
        let suite = conn.negotiated_cipher_suite().map(|s| s.suite());
        Self {
            version,
            cipher_suite: suite.map_or_else(|| "unknown".to_owned(), |s| format!("{s:?}")),
            spec_suite: suite.is_some_and(|s| SPEC_SUITES.contains(&s)),
            alpn: conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            peer_certificates: conn
                .peer_certificates()
                .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect())
                .unwrap_or_default(),
        }
    }

    /// `TLSv1.3` or `TLSv1.2`.
    pub fn protocol_version(&self) -> &'static str {
        self.version
    }

    /// The IANA name of the cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub fn cipher_suite(&self) -> &str {
        &self.cipher_suite
    }

    /// Whether the suite is one of the four the XKS spec lists (fact sheet §1.1).
    pub fn is_spec_cipher_suite(&self) -> bool {
        self.spec_suite
    }

    /// The ALPN protocol the server chose (`h2`, `http/1.1`), if any.
    pub fn alpn(&self) -> Option<&str> {
        self.alpn.as_deref()
    }

    /// The server's certificate chain as sent, leaf first, DER.
    pub fn peer_certificates(&self) -> &[Vec<u8>] {
        &self.peer_certificates
    }

    /// The leaf certificate's summary, if it was sent and parses.
    pub fn leaf_certificate(&self) -> Option<CertificateSummary> {
        self.peer_certificates
            .first()
            .and_then(|der| CertificateSummary::from_der(der))
    }
}

// === impl CertificateSummary ===

impl CertificateSummary {
    /// Parses a DER certificate; `None` if it does not parse.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => ip_addresses.push(ip_text(bytes)),
                    _ => {}
                }
            }
        }
        let validity = cert.validity();
        Some(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: cert.raw_serial_as_string(),
            dns_names,
            ip_addresses,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// The subject distinguished name, e.g. `CN=xks.example.com`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The issuer distinguished name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The serial number, hex bytes separated by `:`.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The DNS names of the subject alternative name extension.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// The IP addresses of the subject alternative name extension.
    pub fn ip_addresses(&self) -> &[String] {
        &self.ip_addresses
    }

    /// Start of validity, seconds since the Unix epoch.
    pub fn not_before_unix(&self) -> i64 {
        self.not_before
    }

    /// End of validity, seconds since the Unix epoch.
    pub fn not_after_unix(&self) -> i64 {
        self.not_after
    }

    /// End of validity, RFC 3339 UTC (`2030-01-01T00:00:00Z`).
    pub fn not_after_utc(&self) -> String {
        format_rfc3339(self.not_after)
    }

    /// Start of validity, RFC 3339 UTC.
    pub fn not_before_utc(&self) -> String {
        format_rfc3339(self.not_before)
    }

    /// Time left until the end of validity as of `now`; `None` if already expired.
    pub fn remaining_at(&self, now: SystemTime) -> Option<Duration> {
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        let end = u64::try_from(self.not_after).ok()?;
        end.checked_sub(now).map(Duration::from_secs)
    }
}

fn ip_text(bytes: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        Ipv4Addr::from(v4).to_string()
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        Ipv6Addr::from(v6).to_string()
    } else {
        hex::encode(bytes)
    }
}
