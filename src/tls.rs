//! Transport security for the run's HTTP client: which base URLs may carry credentials
//! (https, or plain http only to this machine unless allowed), and which certificates are
//! trusted (the usual web roots, and with `--ca-file` the file's certificates too, where a
//! server certificate that is its own CA is accepted when it is one of the file's).

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, Result};

/// Checks the base URL: http(s) only, and plain http only to this machine unless allowed.
pub fn check_base_url(text: &str, allow_insecure_http: bool) -> Result<url::Url> {
    let url = url::Url::parse(text.trim()).map_err(|e| {
        Error::Usage(format!(
            "base URL {text:?} is not a URL ({e}); give it like https://host/api"
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Usage(
            "the base URL must not carry credentials; the profile's auth settings provide them"
                .into(),
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_insecure_http || is_loopback(&url) => Ok(url),
        "http" => Err(Error::Usage(format!(
            "refusing plain http:// to {} (credentials and personal data would travel unencrypted); \
             use https:// or pass --allow-insecure-http",
            url.host_str().unwrap_or("?")
        ))),
        s => Err(Error::Usage(format!(
            "base URL scheme {s}: only https:// (and http:// to loopback) are supported"
        ))),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The client's TLS settings: the Mozilla roots that webpki-roots carries, and the
/// PEM text of `--ca-file` when given.
pub(crate) fn config(pem: Option<&[u8]>) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::CannotStart(format!("cannot set up TLS: {e}")))?;
    let mut config = match pem {
        None => builder.with_root_certificates(roots).with_no_client_auth(),
        Some(pem) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(own_ca(pem, roots, provider)?))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The verifier for `--ca-file`: its certificates added to the roots.
fn own_ca(pem: &[u8], mut roots: RootCertStore, provider: Arc<CryptoProvider>) -> Result<OwnCa> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::CannotStart(format!("--ca-file holds no usable PEM certificate: {e}"))
        })?;
    if certs.is_empty() {
        return Err(Error::CannotStart(
            "--ca-file holds no PEM certificate".into(),
        ));
    }
    for c in &certs {
        roots.add(c.clone()).map_err(|e| {
            Error::CannotStart(format!(
                "--ca-file holds a certificate that cannot be a CA: {e}"
            ))
        })?;
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::CannotStart(format!("cannot use --ca-file: {e}")))?;
    Ok(OwnCa {
        webpki,
        listed: certs,
        provider,
    })
}

/// The usual verification with the roots; when it refuses a certificate only because
/// a CA certificate is used as the server's own (what `openssl req -x509` makes), the
/// certificate is accepted if it is byte for byte one of `--ca-file`'s. The handshake's
/// signature is checked as always, so the server must hold that certificate's key.
#[derive(Debug)]
struct OwnCa {
    webpki: Arc<WebPkiServerVerifier>,
    listed: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

fn ca_used_as_end_entity(e: &rustls::Error) -> bool {
    matches!(e, rustls::Error::InvalidCertificate(CertificateError::Other(o))
        if o.to_string().contains("CaUsedAsEndEntity"))
}

impl ServerCertVerifier for OwnCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(e)
                if ca_used_as_end_entity(&e)
                    && self
                        .listed
                        .iter()
                        .any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_base_url_rules() {
        assert!(check_base_url("http://127.0.0.1:8080/api", false).is_ok());
        assert!(check_base_url("http://localhost/api", false).is_ok());
        assert!(check_base_url("http://[::1]:9/", false).is_ok());
        assert!(check_base_url("https://example.com/api", false).is_ok());
        let e = check_base_url("http://example.com/api", false).unwrap_err();
        assert!(e.to_string().contains("--allow-insecure-http"));
        assert!(check_base_url("http://example.com/api", true).is_ok());
        assert!(check_base_url("ftp://example.com", true).is_err());
        assert!(check_base_url("https://u:p@example.com", true).is_err());
    }
}
