//! What a repair can fail with; the CLI maps each to an exit code.

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The data is in use (its process runs) or another repair holds the data dir.
    #[error("{0}")]
    InUse(String),
    /// The edit list or an argument is wrong; nothing was written.
    #[error("{0}")]
    Invalid(String),
    #[error("no backup `{0}` (see `list`)")]
    NoSuchBackup(String),
    /// The result did not pass validation; the original is untouched.
    #[error("the repaired copy failed validation, nothing was swapped in: {0}")]
    Validation(String),
    /// The data does not open or read.
    #[error("{0}")]
    Damaged(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl RepairError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RepairError {
        let context = context.into();
        move |source| RepairError::Io { context, source }
    }
}

impl From<tessera_source::LogError> for RepairError {
    fn from(e: tessera_source::LogError) -> Self {
        use tessera_source::LogError as L;
        // Whether the data is in use is told by `workspace::FileLock` before anything opens
        // it; repairs open only their own copies.
        match e {
            L::Storage(m) => RepairError::Damaged(m),
            L::Refused(m) => RepairError::Invalid(m),
            other @ (L::InvalidKey(_)
            | L::InvalidName(_)
            | L::NoSuchSource(_)
            | L::NoSuchPartition { .. }) => RepairError::Invalid(other.to_string()),
            other => RepairError::Damaged(other.to_string()),
        }
    }
}
