//! The one error every reader and the pipeline return: located at file, line and column.

/// A problem with a trace: file, line (0: the file as a whole), column and what is wrong.
#[derive(Debug)]
pub struct TraceError {
    pub path: String,
    pub line: u64,
    pub field: String,
    pub problem: String,
}

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.field.as_str()) {
            (0, "-") => write!(f, "{}: {}", self.path, self.problem),
            (0, field) => write!(f, "{}: column `{field}`: {}", self.path, self.problem),
            (line, "-") => write!(f, "{}:{line}: {}", self.path, self.problem),
            (line, field) => write!(
                f,
                "{}:{line}: column `{field}`: {}",
                self.path, self.problem
            ),
        }
    }
}

impl std::error::Error for TraceError {}
