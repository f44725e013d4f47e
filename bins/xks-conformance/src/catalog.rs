//! What each check is: id, checklist rows, area, grade, title; and which checks a run
//! selects.

use serde::Serialize;

/// The part of the XKS proxy API a check exercises. The report groups checks by area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Area {
    /// TLS handshake, cipher suites, HTTP versions, certificates, keep-alive (rows 1-6).
    Transport,
    /// Methods and URI paths (rows 7-17).
    Routing,
    /// SigV4 authentication (rows 18-35).
    Sigv4,
    /// Mutual TLS, when client certificates are supplied (rows 36-41).
    Mtls,
    /// Tolerance of `requestMetadata` and body variations (rows 42-54).
    RequestMetadata,
    /// GetHealthStatus (rows 55-60, 62).
    Health,
    /// GetKeyMetadata (rows 63-68).
    Metadata,
    /// Encrypt, positive and negative (rows 69-75, 77, 79-91).
    Encrypt,
    /// Decrypt round trips and key errors (rows 92-96, 118-120).
    Decrypt,
    /// Decrypt of tampered input must fail authentication (rows 97-111).
    Tamper,
    /// Decrypt of malformed input (rows 112-117).
    Malformed,
    /// The error body on every error answer of the run (rows 121-124).
    Errors,
    /// Secondary authorization and throttling, when configured (rows 125-127).
    Authorization,
    /// IV uniqueness and latency (rows 61, 76, 78, 128).
    Performance,
    /// Log hygiene, checked by the operator (rows 129, 130).
    Logging,
}

/// How much a check's miss matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Grade {
    /// Required by a spec MUST (checklist `[M]`): a miss is a failure.
    Required,
    /// A SHOULD or good practice (checklist `[S]`, `[T]`): a miss is a warning.
    Recommended,
    /// The spec allows several outcomes (checklist `[L]`): any listed outcome passes and is
    /// reported; an unlisted one is a failure.
    Tolerant,
}

/// The description of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CheckInfo {
    /// Stable id, `<area>.<name>`, e.g. `sigv4.skew-past-10min`.
    pub id: &'static str,
    /// The fact sheet's checklist rows (section 14) this check covers.
    pub rows: &'static [u16],
    /// The area it belongs to.
    pub area: Area,
    /// Its grade.
    pub grade: Grade,
    /// What it verifies, in one line.
    pub title: &'static str,
}

/// Which checks a run selects: all, or those matching any of a list of filters.
///
/// A filter matches a check when it is a prefix of the check's id (`sigv4`,
/// `sigv4.skew`, `encrypt.cdiv`), the check's area name (`request-metadata`), or one of
/// its checklist rows (`74` or `#74`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    filters: Vec<String>,
}

// === impl Area ===

impl Area {
    /// Every area, in report order.
    pub const ALL: [Self; 15] = [
        Self::Transport,
        Self::Routing,
        Self::Sigv4,
        Self::Mtls,
        Self::RequestMetadata,
        Self::Health,
        Self::Metadata,
        Self::Encrypt,
        Self::Decrypt,
        Self::Tamper,
        Self::Malformed,
        Self::Errors,
        Self::Authorization,
        Self::Performance,
        Self::Logging,
    ];

    /// The name used in check ids and filters, e.g. `request-metadata`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Transport => "transport",
            Self::Routing => "routing",
            Self::Sigv4 => "sigv4",
            Self::Mtls => "mtls",
            Self::RequestMetadata => "request-metadata",
            Self::Health => "health",
            Self::Metadata => "metadata",
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
            Self::Tamper => "tamper",
            Self::Malformed => "malformed",
            Self::Errors => "errors",
            Self::Authorization => "authorization",
            Self::Performance => "performance",
            Self::Logging => "logging",
        }
    }

    /// The heading of the area in reports.
    pub fn title(self) -> &'static str {
        match self {
            Self::Transport => "Transport and TLS",
            Self::Routing => "Routing and methods",
            Self::Sigv4 => "SigV4 authentication",
            Self::Mtls => "Mutual TLS",
            Self::RequestMetadata => "requestMetadata handling",
            Self::Health => "GetHealthStatus",
            Self::Metadata => "GetKeyMetadata",
            Self::Encrypt => "Encrypt",
            Self::Decrypt => "Decrypt",
            Self::Tamper => "Decrypt: tamper detection",
            Self::Malformed => "Decrypt: malformed input",
            Self::Errors => "Error body format",
            Self::Authorization => "Secondary authorization and throttling",
            Self::Performance => "IV uniqueness and latency",
            Self::Logging => "Logging (manual)",
        }
    }
}

// === impl Grade ===

impl Grade {
    /// `required`, `recommended` or `tolerant`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Recommended => "recommended",
            Self::Tolerant => "tolerant",
        }
    }
}

// === impl CheckInfo ===

impl CheckInfo {
    /// The rows as text: `#25`, or `#7-10` style lists such as `#105,106`.
    pub fn rows_text(&self) -> String {
        let rows: Vec<String> = self.rows.iter().map(u16::to_string).collect();
        format!("#{}", rows.join(","))
    }
}

/// Every check, in report order.
pub fn catalog() -> Vec<CheckInfo> {
    crate::checks::all().into_iter().map(|c| c.info).collect()
}

// === impl Selection ===

impl Selection {
    /// Every check.
    pub fn all() -> Self {
        Self::default()
    }

    /// The checks matching any of `filters`; no filter selects every check.
    pub fn only<I, S>(filters: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            filters: filters
                .into_iter()
                .map(Into::into)
                .map(|f| f.trim().to_owned())
                .filter(|f| !f.is_empty())
                .collect(),
        }
    }

    /// Whether there are no filters.
    pub fn is_all(&self) -> bool {
        self.filters.is_empty()
    }

    /// Whether `info` is selected.
    pub fn matches(&self, info: &CheckInfo) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| filter_matches(f, info))
    }

    /// The filters that match no check of `catalog`: likely typos.
    pub fn unmatched(&self, catalog: &[CheckInfo]) -> Vec<String> {
        self.filters
            .iter()
            .filter(|f| !catalog.iter().any(|info| filter_matches(f, info)))
            .cloned()
            .collect()
    }
}

fn filter_matches(filter: &str, info: &CheckInfo) -> bool {
    let row = filter.strip_prefix('#').unwrap_or(filter);
    if let Ok(row) = row.parse::<u16>() {
        return info.rows.contains(&row);
    }
    info.id.starts_with(filter) || info.area.name() == filter
}

#[cfg(test)]
mod tests;
