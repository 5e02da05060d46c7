//! TLS to PostgreSQL with libpq's `sslmode` meanings, on rustls.
//!
//! `prefer` and `require` encrypt without checking the certificate (as libpq does; `require` checks
//! it against a CA file when one is configured, like libpq). `verify-ca` checks that a trusted CA
//! signed the certificate; `verify-full` also checks that it names the host connected to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

use crate::profile::SslMode;

/// The CA file to use: the profile's, else `PGSSLROOTCERT`, else `~/.postgresql/root.crt` if present.
pub fn root_cert(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = configured {
        return Some(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("PGSSLROOTCERT").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let default = PathBuf::from(std::env::var_os("HOME")?).join(".postgresql/root.crt");
    default.is_file().then_some(default)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::aws_lc_rs::default_provider())
}

/// The client configuration for `mode`, or why there is none (a CA file missing or unreadable).
pub fn client_config(mode: SslMode, root_cert: Option<&Path>) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    // `sslrootcert=system` (libpq 16): the operating system's trusted CAs, and only with
    // verify-full, as libpq insists (a public CA signs for anyone's name, so the name must be checked).
    if root_cert.is_some_and(|p| p == Path::new("system")) {
        if mode != SslMode::VerifyFull {
            return Err("sslrootcert=system trusts every CA of the operating system, so it needs sslmode=verify-full \
                 (as libpq 16 requires): set source.sslmode or PGSSLMODE to verify-full"
                .into());
        }
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
            return Err(format!(
                "sslrootcert=system: the operating system holds no CA certificate{why}; install its CA store \
                 (Debian: ca-certificates) or give the CA's file in sslrootcert"
            ));
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| e.to_string())?;
        return Ok(builder.dangerous().with_custom_certificate_verifier(webpki).with_no_client_auth());
    }
    let verify = match (mode, root_cert) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(format!(
                "sslmode {} needs the certificate of the CA that signed the server's: set source.sslrootcert \
                 (or PGSSLROOTCERT), or put it in ~/.postgresql/root.crt",
                if mode == SslMode::VerifyCa { "verify-ca" } else { "verify-full" }
            ))
        }
        (SslMode::Require, Some(_)) => Some(false),
        (SslMode::VerifyCa, Some(_)) => Some(false),
        (SslMode::VerifyFull, Some(_)) => Some(true),
        _ => None,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (verify, root_cert) {
        (Some(check_name), Some(path)) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read the CA certificates in {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("{} holds no usable CA certificate (PEM expected)", path.display()));
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| e.to_string())?;
            if check_name {
                webpki
            } else {
                Arc::new(AnyName(webpki))
            }
        }
        _ => Arc::new(Unchecked(provider)),
    };
    Ok(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
}

/// `verify-ca`: the chain must lead to a trusted CA; the name on the certificate is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` / `require` without a CA file: encryption without authentication, as in libpq. The
/// handshake signatures are still checked, so the peer must hold the certificate's key.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_need_a_ca_file() {
        let err = client_config(SslMode::VerifyFull, None).unwrap_err();
        assert!(err.contains("sslmode verify-full needs the certificate of the CA"), "{err}");
        assert!(client_config(SslMode::Require, None).is_ok());
        assert!(client_config(SslMode::Prefer, None).is_ok());
    }

    #[test]
    fn system_needs_verify_full_and_the_systems_cas() {
        for mode in [SslMode::Prefer, SslMode::Require, SslMode::VerifyCa] {
            let err = client_config(mode, Some(Path::new("system"))).unwrap_err();
            assert!(err.contains("needs sslmode=verify-full"), "{err}");
        }
        // The machine's CA store (scripts/setup.sh's Debian has ca-certificates): found, or named.
        match client_config(SslMode::VerifyFull, Some(Path::new("system"))) {
            Ok(_) => assert!(!rustls_native_certs::load_native_certs().certs.is_empty()),
            Err(err) => assert!(err.contains("holds no CA certificate"), "{err}"),
        }
    }

    #[test]
    fn an_unreadable_ca_file_is_named() {
        let err = client_config(SslMode::VerifyCa, Some(Path::new("/nonexistent/root.crt"))).unwrap_err();
        assert!(err.starts_with("cannot read the CA certificates in /nonexistent/root.crt"), "{err}");
    }
}
