use std::ffi::CStr;
use std::fmt;
use std::os::raw::c_int;

use crate::sys;

/// A libesp failure: one variant per C status code, each with the detail
/// libesp gave (`esp_last_error`), or a fixed description when it gave none.
///
/// An HTTP error status (404, 429, 500) is not an `Error`: it is a
/// [`Response`](crate::Response) with that status.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `ESP_EINVAL`: a bad argument (NUL or CR/LF in a header, ...).
    InvalidArgument(String),
    /// `ESP_ECONFIG`: the config is malformed, has an unknown key or a wrong type.
    Config(String),
    /// `ESP_EHANDLE`: the handle was released, is stale, or `shutdown` ran.
    Handle(String),
    /// `ESP_ENOMEM`: out of memory.
    OutOfMemory(String),
    /// `ESP_ETIMEDOUT`: total, connect, first-byte or idle timeout.
    TimedOut(String),
    /// `ESP_EPOOLTIMEOUT`: no connection slot within `pool_timeout_ms`.
    PoolTimeout(String),
    /// `ESP_ECONNECT`: DNS, TCP connect, connection refused or reset.
    Connect(String),
    /// `ESP_ETLS`: TLS handshake or certificate verification.
    Tls(String),
    /// `ESP_EIO`: send/receive failure on an established connection.
    Io(String),
    /// `ESP_EPROTOCOL`: the server did not speak HTTP.
    Protocol(String),
    /// `ESP_ECANCELLED`: the call was cancelled.
    Cancelled(String),
    /// `ESP_ECIRCUIT`: the origin's circuit breaker is open.
    CircuitOpen(String),
    /// `ESP_ETOOLARGE`: the response is larger than `max_response_bytes`.
    TooLarge(String),
    /// `ESP_ESHUTDOWN`: `shutdown` ran while the call was in flight.
    Shutdown(String),
    /// `ESP_EINTERNAL`: a bug in libesp.
    Internal(String),
    /// `ESP_EAGAIN`: nothing arrived within the wait.
    Again(String),
    /// `ESP_ERATELIMITED`: the client's `rate_limit` left no budget for the
    /// request before its timeout; it was never sent.
    RateLimited(String),
    /// A status code this binding does not know (from a newer libesp).
    Unknown {
        /// The negative C status code.
        code: i32,
        /// The detail libesp gave.
        message: String,
    },
}

/// `Result<T, libesp::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The error for `code` with `message`, or with the code's fixed
    /// description when `message` is empty.
    pub fn from_code(code: i32, message: impl Into<String>) -> Error {
        let mut message = message.into();
        if message.is_empty() {
            message = strerror(code).to_owned();
        }
        match code {
            sys::ESP_EINVAL => Error::InvalidArgument(message),
            sys::ESP_ECONFIG => Error::Config(message),
            sys::ESP_EHANDLE => Error::Handle(message),
            sys::ESP_ENOMEM => Error::OutOfMemory(message),
            sys::ESP_ETIMEDOUT => Error::TimedOut(message),
            sys::ESP_EPOOLTIMEOUT => Error::PoolTimeout(message),
            sys::ESP_ECONNECT => Error::Connect(message),
            sys::ESP_ETLS => Error::Tls(message),
            sys::ESP_EIO => Error::Io(message),
            sys::ESP_EPROTOCOL => Error::Protocol(message),
            sys::ESP_ECANCELLED => Error::Cancelled(message),
            sys::ESP_ECIRCUIT => Error::CircuitOpen(message),
            sys::ESP_ETOOLARGE => Error::TooLarge(message),
            sys::ESP_ESHUTDOWN => Error::Shutdown(message),
            sys::ESP_EINTERNAL => Error::Internal(message),
            sys::ESP_EAGAIN => Error::Again(message),
            sys::ESP_ERATELIMITED => Error::RateLimited(message),
            code => Error::Unknown { code, message },
        }
    }

    /// The error of a C call that just returned `code`: reads
    /// `esp_last_error`, so it must run on the failing call's thread before
    /// any other libesp call there.
    pub(crate) fn last(code: c_int) -> Error {
        // SAFETY: esp_last_error never returns NULL and the string stays
        // valid until the next libesp call on this thread; it is copied now.
        let detail = unsafe { CStr::from_ptr(sys::esp_last_error()) };
        Error::from_code(code, detail.to_string_lossy())
    }

    /// The C status code (`ESP_E*`, negative).
    pub fn code(&self) -> i32 {
        match self {
            Error::InvalidArgument(_) => sys::ESP_EINVAL,
            Error::Config(_) => sys::ESP_ECONFIG,
            Error::Handle(_) => sys::ESP_EHANDLE,
            Error::OutOfMemory(_) => sys::ESP_ENOMEM,
            Error::TimedOut(_) => sys::ESP_ETIMEDOUT,
            Error::PoolTimeout(_) => sys::ESP_EPOOLTIMEOUT,
            Error::Connect(_) => sys::ESP_ECONNECT,
            Error::Tls(_) => sys::ESP_ETLS,
            Error::Io(_) => sys::ESP_EIO,
            Error::Protocol(_) => sys::ESP_EPROTOCOL,
            Error::Cancelled(_) => sys::ESP_ECANCELLED,
            Error::CircuitOpen(_) => sys::ESP_ECIRCUIT,
            Error::TooLarge(_) => sys::ESP_ETOOLARGE,
            Error::Shutdown(_) => sys::ESP_ESHUTDOWN,
            Error::Internal(_) => sys::ESP_EINTERNAL,
            Error::Again(_) => sys::ESP_EAGAIN,
            Error::RateLimited(_) => sys::ESP_ERATELIMITED,
            Error::Unknown { code, .. } => *code,
        }
    }

    /// The detail of the failure.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidArgument(m)
            | Error::Config(m)
            | Error::Handle(m)
            | Error::OutOfMemory(m)
            | Error::TimedOut(m)
            | Error::PoolTimeout(m)
            | Error::Connect(m)
            | Error::Tls(m)
            | Error::Io(m)
            | Error::Protocol(m)
            | Error::Cancelled(m)
            | Error::CircuitOpen(m)
            | Error::TooLarge(m)
            | Error::Shutdown(m)
            | Error::Internal(m)
            | Error::Again(m)
            | Error::RateLimited(m)
            | Error::Unknown { message: m, .. } => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = strerror(self.code());
        let message = self.message();
        if message == kind {
            f.write_str(kind)
        } else {
            write!(f, "{kind}: {message}")
        }
    }
}

impl std::error::Error for Error {}

/// The fixed description of a status code.
fn strerror(code: c_int) -> &'static str {
    // SAFETY: esp_strerror returns a static NUL-terminated string for any code.
    unsafe { CStr::from_ptr(sys::esp_strerror(code)) }
        .to_str()
        .unwrap_or("unknown status")
}

/// `Ok(())` for ESP_OK, otherwise the error with this thread's last detail.
pub(crate) fn check(code: c_int) -> Result<()> {
    if code == sys::ESP_OK {
        Ok(())
    } else {
        Err(Error::last(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_its_variant_and_back() {
        for code in (sys::ESP_ERATELIMITED..=sys::ESP_EINVAL).chain([-99]) {
            let error = Error::from_code(code, "detail");
            assert_eq!(error.code(), code);
            assert_eq!(error.message(), "detail");
            assert!(error.to_string().ends_with(": detail"), "{error}");
        }
        assert!(matches!(
            Error::from_code(sys::ESP_ETIMEDOUT, ""),
            Error::TimedOut(_)
        ));
        assert!(matches!(
            Error::from_code(-99, "x"),
            Error::Unknown { code: -99, .. }
        ));
    }

    #[test]
    fn an_empty_detail_falls_back_to_the_fixed_description() {
        let error = Error::from_code(sys::ESP_ECANCELLED, "");
        assert!(!error.message().is_empty());
        assert_eq!(error.to_string(), error.message());
    }
}
