//! The raw query string pairs of one request, handed out parameter by parameter; it
//! owns the shapes a value may come in (one, many, a number) and the problem list, and
//! knows no parameter by name.

/// The raw query string pairs of one request, consumed parameter by parameter so that
/// whatever is left at the end is an unknown parameter.
pub struct Params {
    pairs: Vec<(String, String)>,
    problems: Vec<String>,
}

impl Params {
    /// Pairs with a NUL character (which PostgreSQL text cannot hold) are set aside as
    /// problems here, so nothing downstream can send one to the database.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        let mut problems = Vec::new();
        let pairs = pairs
            .into_iter()
            .filter(|(key, value)| {
                let clean = !key.contains('\0') && !value.contains('\0');
                if !clean {
                    problems.push(format!(
                        "{}: must not contain NUL characters",
                        key.replace('\0', "\\0")
                    ));
                }
                clean
            })
            .collect();
        Params { pairs, problems }
    }

    /// Records a problem with the request.
    pub fn problem(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// Every non-empty value of `name`, repeated or comma-separated.
    pub fn many(&mut self, name: &str) -> Vec<String> {
        self.take(name)
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The one non-empty value of `name`, if given; a problem if given twice.
    pub fn one(&mut self, name: &str) -> Option<String> {
        let mut values: Vec<String> = self
            .take(name)
            .into_iter()
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
            .collect();
        if values.len() > 1 {
            self.problem(format!("{name}: give it at most once"));
        }
        values.pop()
    }

    /// `one(name)` parsed as a whole number within `min..=max`.
    pub fn number(&mut self, name: &str, min: i64, max: i64) -> Option<i64> {
        let text = self.one(name)?;
        match text.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.problem(format!(
                    "{name}: must be a whole number from {min} to {max} (got {text:?})"
                ));
                None
            }
        }
    }

    fn take(&mut self, name: &str) -> Vec<String> {
        let (taken, kept) = std::mem::take(&mut self.pairs)
            .into_iter()
            .partition(|(key, _)| key == name);
        self.pairs = kept;
        taken.into_iter().map(|(_, value)| value).collect()
    }

    pub(super) fn take_prefixed(&mut self, prefix: &str) -> Vec<(String, String)> {
        let (taken, kept) = std::mem::take(&mut self.pairs)
            .into_iter()
            .partition(|(key, _)| key.starts_with(prefix));
        self.pairs = kept;
        taken
            .into_iter()
            .map(|(key, value)| (key[prefix.len()..].to_owned(), value))
            .collect()
    }

    /// Ends parsing: `Err` with every problem (unknown parameters included) if any.
    pub fn finish(mut self) -> Result<(), Vec<String>> {
        let mut unknown: Vec<String> = self.pairs.iter().map(|(key, _)| key.clone()).collect();
        unknown.dedup();
        for key in unknown {
            self.problems.push(format!("{key}: unknown parameter"));
        }
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self.problems)
        }
    }
}
