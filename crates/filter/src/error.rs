//! The one error type of the crate. Every variant is a client mistake (a 400 for the records
//! engine) except [`FilterError::Resolver`], whose meaning is the resolver's.

/// Why a filter or sort could not be parsed or compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The text is not valid filter or sort syntax. `position` is a 0-based byte offset.
    #[error("{kind} at position {position}")]
    Syntax {
        /// The byte offset in the input where the problem was found.
        position: usize,
        /// What is wrong there.
        kind: SyntaxError,
    },
    /// The input is longer than [`crate::Limits::max_length`].
    #[error("expression is {length} bytes long, more than the limit of {max}")]
    TooLong {
        /// The input length in bytes.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// The resolver does not know this identifier.
    #[error("unknown field `{0}`")]
    UnknownField(String),
    /// The resolver knows this identifier but refuses it here.
    #[error("field `{0}` is not allowed here")]
    FieldNotAllowed(String),
    /// A modifier was applied to an operand it does not fit, e.g. `:length` on a single value.
    #[error("modifier `:{modifier}` cannot be applied to `{operand}`")]
    UnsupportedModifier {
        /// The modifier name, without the colon.
        modifier: &'static str,
        /// The operand, as written.
        operand: String,
    },
    /// A function was called with arguments it cannot take, or cannot be compiled for the
    /// dialect.
    #[error("invalid call to `{function}`: {reason}")]
    InvalidFunction {
        /// The function name.
        function: &'static str,
        /// Why.
        reason: String,
    },
    /// A sort item cannot be compiled (e.g. a multi-valued field or a request value).
    #[error("cannot sort by `{0}`")]
    InvalidSort(String),
    /// The resolver failed for a reason of its own.
    #[error("{0}")]
    Resolver(String),
}

/// What is wrong in a [`FilterError::Syntax`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    /// A token that does not fit where it stands.
    #[error("unexpected token `{0}`")]
    UnexpectedToken(String),
    /// A character that starts no token.
    #[error("unexpected character `{0}`")]
    UnexpectedCharacter(char),
    /// The input stops where more was expected.
    #[error("unexpected end of expression")]
    UnexpectedEnd,
    /// A quoted string with no closing quote.
    #[error("unterminated string")]
    UnterminatedString,
    /// A malformed number.
    #[error("invalid number `{0}`")]
    InvalidNumber(String),
    /// A malformed identifier.
    #[error("invalid identifier `{0}`")]
    InvalidIdentifier(String),
    /// An `@` name that is no known macro or source.
    #[error("unknown macro `{0}`")]
    UnknownMacro(String),
    /// A `:name` that is no known modifier.
    #[error("unknown modifier `:{0}`")]
    UnknownModifier(String),
    /// A call to an unknown function.
    #[error("unknown function `{0}`")]
    UnknownFunction(String),
    /// Wrong arguments to a known function.
    #[error("invalid arguments to `{function}`: {reason}")]
    InvalidArguments {
        /// The function name.
        function: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// Parentheses or function calls nested deeper than [`crate::Limits::max_depth`].
    #[error("expression nested deeper than {0} levels")]
    TooDeep(usize),
    /// More comparisons (or sort items) than [`crate::Limits::max_terms`] allows.
    #[error("more than {0} terms")]
    TooManyTerms(usize),
}

impl FilterError {
    /// Returns the byte position of a syntax error, if this is one.
    pub fn position(&self) -> Option<usize> {
        match self {
            FilterError::Syntax { position, .. } => Some(*position),
            _ => None,
        }
    }

    pub(crate) fn syntax(position: usize, kind: SyntaxError) -> FilterError {
        FilterError::Syntax { position, kind }
    }
}
