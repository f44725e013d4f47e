//! TLS probes xks-client cannot make: a handshake that offers only the spec's four cipher
//! suites, and a TLS 1.0/1.1 `ClientHello` (which rustls cannot send) written by hand.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::{CipherSuite, RootCertStore, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::Settings;
use crate::ctx::random_bytes;

/// The cipher suites the XKS spec lists (fact sheet §1.1).
pub(crate) const LISTED_SUITES: [CipherSuite; 4] = [
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
];

/// What a completed handshake negotiated.
#[derive(Debug, Clone)]
pub(crate) struct Negotiated {
    pub(crate) suite: String,
}

/// What a proxy did with a TLS 1.0 or 1.1 `ClientHello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Legacy {
    /// It answered with a `ServerHello` for that version.
    Accepted(String),
    /// It refused: an alert, a closed connection, or a `ServerHello` for another version.
    Rejected(String),
}

/// Connects and completes a TLS handshake of `version`, offering only the listed suites
/// when `listed_only`. Presents the accepted client certificate, if any.
pub(crate) async fn handshake(
    settings: &Settings,
    version: &'static SupportedProtocolVersion,
    listed_only: bool,
) -> Result<Negotiated, String> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if listed_only {
        provider
            .cipher_suites
            .retain(|s| LISTED_SUITES.contains(&s.suite()));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots(settings)?);
    let mut config = match &settings.mtls {
        None => builder.with_no_client_auth(),
        Some(mtls) => {
            let chain = CertificateDer::pem_slice_iter(&mtls.good.cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(&mtls.good.key_pem)
                .map_err(|e| format!("client key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(settings.endpoint.host().to_owned())
        .map_err(|_| format!("{:?} is not a TLS server name", settings.endpoint.host()))?;
    let timeout = settings.timeout;
    let tcp = connect(settings).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| format!("no handshake within {} ms", timeout.as_millis()))?
        .map_err(|e| format!("handshake failed: {e}"))?;
    let session = tls.get_ref().1;
    Ok(Negotiated {
        suite: session
            .negotiated_cipher_suite()
            .map_or_else(|| "unknown".to_owned(), |s| format!("{:?}", s.suite())),
    })
}

/// Sends a `ClientHello` for `version` (`0x0301` TLS 1.0, `0x0302` TLS 1.1) and reads what
/// comes back.
pub(crate) async fn legacy_hello(settings: &Settings, version: u16) -> Result<Legacy, String> {
    let timeout = settings.timeout;
    let mut tcp = connect(settings).await?;
    let hello = client_hello(version, settings.endpoint.host());
    tokio::time::timeout(timeout, tcp.write_all(&hello))
        .await
        .map_err(|_| "could not send the ClientHello in time".to_owned())?
        .map_err(|e| format!("could not send the ClientHello: {e}"))?;
    let mut head = [0_u8; 11];
    let read = tokio::time::timeout(timeout, read_up_to(&mut tcp, &mut head)).await;
    let n = match read {
        Err(_) => {
            return Err(format!(
                "no answer within {} ms, neither a ServerHello nor an alert",
                timeout.as_millis()
            ));
        }
        Ok(Err(e)) => return Ok(Legacy::Rejected(format!("connection closed ({e})"))),
        Ok(Ok(n)) => n,
    };
    // Record: type(1) version(2) length(2); handshake: type(1) length(3) version(2).
    match head.get(..n) {
        Some([]) => Ok(Legacy::Rejected(
            "connection closed without an answer".to_owned(),
        )),
        Some([0x15, _, _, _, _, level, description, ..]) => Ok(Legacy::Rejected(format!(
            "TLS alert {description} (level {level})"
        ))),
        Some([0x16, _, _, _, _, 0x02, _, _, _, major, minor]) => {
            let chosen = u16::from_be_bytes([*major, *minor]);
            if chosen <= version {
                Ok(Legacy::Accepted(version_name(chosen)))
            } else {
                Ok(Legacy::Rejected(format!(
                    "ServerHello for {}",
                    version_name(chosen)
                )))
            }
        }
        Some(other) => Ok(Legacy::Rejected(format!(
            "an answer that is not a ServerHello ({} bytes starting {:02x?})",
            other.len(),
            &other[..other.len().min(5)]
        ))),
        None => Err("read past the buffer".to_owned()),
    }
}

async fn read_up_to(tcp: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match tcp.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
        // An alert is 7 bytes: enough to decide.
        if filled >= 7 && buf[0] == 0x15 {
            break;
        }
    }
    Ok(filled)
}

/// Opens a TCP connection to the proxy (or the `--connect-to` address).
async fn connect(settings: &Settings) -> Result<TcpStream, String> {
    let timeout = settings.timeout;
    let addrs: Vec<SocketAddr> = match settings.connect_to {
        Some(addr) => vec![addr],
        None => {
            let host = settings.endpoint.host().to_owned();
            let port = settings.endpoint.port();
            tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port)))
                .await
                .map_err(|_| format!("cannot resolve {host} in time"))?
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .collect()
        }
    };
    let mut last = "no address".to_owned();
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => last = format!("cannot connect to {addr}: {e}"),
            Err(_) => last = format!("no TCP connection to {addr} within {timeout:?}"),
        }
    }
    Err(last)
}

fn roots(settings: &Settings) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match &settings.trust_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("CA file: {e}"))?;
                store.add(cert).map_err(|e| format!("CA file: {e}"))?;
            }
        }
        None => {
            let loaded = rustls_native_certs::load_native_certs();
            let _ = store.add_parsable_certificates(loaded.certs);
        }
    }
    if store.is_empty() {
        return Err("no trust roots".to_owned());
    }
    Ok(store)
}

fn version_name(version: u16) -> String {
    match version {
        0x0300 => "SSLv3".to_owned(),
        0x0301 => "TLSv1.0".to_owned(),
        0x0302 => "TLSv1.1".to_owned(),
        0x0303 => "TLSv1.2".to_owned(),
        0x0304 => "TLSv1.3".to_owned(),
        other => format!("version 0x{other:04x}"),
    }
}

/// A `ClientHello` offering only `version` and CBC suites of that era, with SNI for DNS
/// names, the usual elliptic-curve extensions and secure renegotiation.
fn client_hello(version: u16, host: &str) -> Vec<u8> {
    let suites: [u16; 7] = [0xc013, 0xc014, 0xc009, 0xc00a, 0x002f, 0x0035, 0x000a];
    let mut ext = Vec::new();
    let is_dns = host.parse::<std::net::IpAddr>().is_err() && !host.is_empty();
    if is_dns {
        let name = host.as_bytes();
        let name_len = u16::try_from(name.len()).unwrap_or(0);
        put_u16(&mut ext, 0x0000);
        put_u16(&mut ext, name_len + 5);
        put_u16(&mut ext, name_len + 3);
        ext.push(0);
        put_u16(&mut ext, name_len);
        ext.extend_from_slice(&name[..usize::from(name_len)]);
    }
    // supported_groups: secp256r1, secp384r1, x25519.
    ext.extend_from_slice(&[
        0x00, 0x0a, 0x00, 0x08, 0x00, 0x06, 0x00, 0x17, 0x00, 0x18, 0x00, 0x1d,
    ]);
    // ec_point_formats: uncompressed.
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    // renegotiation_info: empty.
    ext.extend_from_slice(&[0xff, 0x01, 0x00, 0x01, 0x00]);

    let mut body = Vec::new();
    put_u16(&mut body, version);
    body.extend_from_slice(&random_bytes(32));
    body.push(0); // session id
    put_u16(&mut body, u16::try_from(suites.len() * 2).unwrap_or(0));
    for suite in suites {
        put_u16(&mut body, suite);
    }
    body.extend_from_slice(&[1, 0]); // compression: null
    put_u16(&mut body, u16::try_from(ext.len()).unwrap_or(0));
    body.extend_from_slice(&ext);

    let mut handshake = vec![0x01];
    let len = u32::try_from(body.len()).unwrap_or(0).to_be_bytes();
    handshake.extend_from_slice(&len[1..]);
    handshake.extend_from_slice(&body);

    let mut record = vec![0x16, 0x03, 0x01];
    put_u16(&mut record, u16::try_from(handshake.len()).unwrap_or(0));
    record.extend_from_slice(&handshake);
    record
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}
