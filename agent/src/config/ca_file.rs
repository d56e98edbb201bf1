//! A PEM bundle of extra trust roots for the HTTPS clients (HTTP sinks, the Kubernetes API).

/// Why a CA file could not be used; callers name the file and the setting it came from.
#[derive(Debug)]
pub enum CaFileError {
    Read(std::io::Error),
    NoCertificate,
}

/// The certificates of the PEM file at `path` as ureq root certificates.
pub fn root_certs(path: &std::path::Path) -> Result<ureq::tls::RootCerts, CaFileError> {
    let pem = std::fs::read(path).map_err(CaFileError::Read)?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c.to_owned()),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(CaFileError::NoCertificate);
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}
