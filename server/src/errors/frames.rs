//! Backtrace frames: which frames are the application's own (in-app) and what part of
//! a frame names its place in the code independently of line numbers. Owns the
//! library-path rule (Rails' backtrace cleaner idea: frames under gems, Ruby itself,
//! vendored code and bundler are not the app's); never hashes, never reads metadata.

/// Frames of a backtrace that are looked at (noted while the metadata is read); the
/// rest are ignored.
pub const MAX_FRAMES: usize = crate::domain::MAX_FRAMES;
/// Bytes of one frame that are looked at.
pub const MAX_FRAME_BYTES: usize = 1_000;

/// Path pieces that mark a frame as library code wherever they appear.
const LIBRARY_PATH_PARTS: &[&str] = &[
    "/gems/",
    "/bundler/",
    "/bundle/",
    "/vendor/",
    "/lib/ruby/",
    "/rubygems/",
    "/.rbenv/",
    "/.rvm/",
    "/rubies/",
    "/.gem/",
    "/node_modules/",
    "/site-packages/",
];
/// Prefixes that mark a frame as library code (relative paths as a backtrace cleaner
/// leaves them, and Ruby's internal frames).
const LIBRARY_PREFIXES: &[&str] = &[
    "vendor/",
    "gems/",
    "bundler/",
    "ruby/",
    "<internal:",
    "node_modules/",
];

/// Whether `frame` is the application's own code.
pub fn is_in_app(frame: &str) -> bool {
    let frame = trimmed(frame);
    if frame.is_empty() {
        return false;
    }
    if LIBRARY_PREFIXES
        .iter()
        .any(|prefix| frame.starts_with(prefix))
        || has_library_path_part(frame)
    {
        return false;
    }
    !is_cleaned_gem_frame(frame)
}

/// Whether any of [`LIBRARY_PATH_PARTS`] is in `frame`: each starts with a slash, so
/// only the frame's slashes are tried, in one pass (not one substring search per part).
fn has_library_path_part(frame: &str) -> bool {
    let bytes = frame.as_bytes();
    bytes.iter().enumerate().any(|(at, &byte)| {
        byte == b'/'
            && LIBRARY_PATH_PARTS
                .iter()
                .any(|part| bytes[at..].starts_with(part.as_bytes()))
    })
}

/// Rails' backtrace cleaner writes a gem's frame as `activerecord (7.1.2) lib/…`.
fn is_cleaned_gem_frame(frame: &str) -> bool {
    let Some((name, rest)) = frame.split_once(" (") else {
        return false;
    };
    let Some((version, _)) = rest.split_once(") ") else {
        return false;
    };
    !name.is_empty()
        && !name.contains('/')
        && !version.is_empty()
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// The frame without indentation and the `from ` Ruby's full messages put before
/// each frame, cut to [`MAX_FRAME_BYTES`].
fn trimmed(frame: &str) -> &str {
    let frame = super::template::cut(frame, MAX_FRAME_BYTES).trim();
    frame.strip_prefix("from ").unwrap_or(frame)
}

/// The frame's place in the code without line numbers: `file in method` for Ruby's
/// `file:line:in 'method'` (and `` `method' ``), else the frame with its digits removed
/// (any other language's format). Digits go from the method name too: Rails names
/// compiled view methods with numbers that change from boot to boot.
pub fn location(frame: &str) -> String {
    let location = Location::of(frame);
    let mut out = Vec::with_capacity(location.len());
    location.write(|bytes| out.extend_from_slice(bytes));
    // Pieces of the frame cut where ASCII digits were: still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// A frame's [`location`] as borrowed pieces of it, written without building it.
#[derive(Debug, Clone, Copy)]
pub struct Location<'f> {
    /// The file (Ruby's format), else the whole frame, digits to be removed.
    head: &'f str,
    /// The method, digits to be removed (Ruby's format).
    method: Option<&'f str>,
}

impl<'f> Location<'f> {
    pub fn of(frame: &'f str) -> Self {
        let frame = trimmed(frame);
        match frame.split_once(":in ") {
            Some((place, method)) => Location {
                head: strip_line_numbers(place),
                method: Some(method.trim_matches(|c| matches!(c, '`' | '\'' | '"' | ' '))),
            },
            None => Location {
                head: frame,
                method: None,
            },
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        match self.method {
            Some(method) => self.head.len() + IN.len() + method.len() - digits(method),
            None => self.head.len() - digits(self.head),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands its bytes to `out`, in pieces.
    pub fn write(&self, mut out: impl FnMut(&[u8])) {
        match self.method {
            Some(method) => {
                out(self.head.as_bytes());
                out(IN.as_bytes());
                write_without_digits(method, &mut out);
            }
            None => write_without_digits(self.head, &mut out),
        }
    }
}

/// Between a location's file and method.
const IN: &str = " in ";

fn digits(text: &str) -> usize {
    text.bytes().filter(u8::is_ascii_digit).count()
}

/// `text` without its ASCII digits, in the pieces between them.
fn write_without_digits(text: &str, out: &mut impl FnMut(&[u8])) {
    for piece in text.as_bytes().split(u8::is_ascii_digit) {
        if !piece.is_empty() {
            out(piece);
        }
    }
}

/// `path:12` or `path:12:3` → `path`.
fn strip_line_numbers(place: &str) -> &str {
    let mut place = place;
    while let Some((head, tail)) = place.rsplit_once(':') {
        if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
            place = head;
        } else {
            break;
        }
    }
    place
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_frames_are_in_app_and_library_frames_are_not() {
        for frame in [
            "app/models/user.rb:42:in `full_name'",
            "/srv/shop/app/controllers/orders_controller.rb:17:in 'OrdersController#create'",
            "lib/billing/charge.rb:5:in 'Billing::Charge.call'",
        ] {
            assert!(is_in_app(frame), "{frame}");
        }
        for frame in [
            "/usr/local/bundle/gems/activerecord-7.1.2/lib/active_record/relation.rb:10:in `find'",
            "/home/u/.rbenv/versions/3.3.0/lib/ruby/3.3.0/json/common.rb:219:in `parse'",
            "vendor/bundle/ruby/3.3.0/gems/rack-3.0.8/lib/rack/builder.rb:1:in `call'",
            "/usr/local/lib/ruby/gems/3.3.0/bundler/gems/rails-abc123/lib/x.rb:1:in `y'",
            "<internal:kernel>:187:in `loop'",
            "actionpack (7.1.2) lib/action_controller/metal.rb:227:in `dispatch'",
            "  from /app/vendor/cache/x.rb:1:in `z'",
            "",
        ] {
            assert!(!is_in_app(frame), "{frame}");
        }
    }

    #[test]
    fn library_path_parts_are_found_wherever_they_are() {
        for part in LIBRARY_PATH_PARTS {
            assert!(part.starts_with('/'), "{part}");
            for frame in [
                format!("{part}x.rb:1:in `y'"),
                format!("/a{part}x.rb:1:in `y'"),
                format!("a/b/c{part}"),
            ] {
                assert!(has_library_path_part(&frame), "{frame}");
                assert_eq!(has_library_path_part(&frame), frame.contains(part));
            }
        }
        for frame in [
            "app/gems.rb:1:in `x'",
            "/srv/app/vendors/x.rb",
            "gems",
            "/",
            "",
        ] {
            let expected = LIBRARY_PATH_PARTS.iter().any(|part| frame.contains(part));
            assert_eq!(has_library_path_part(frame), expected, "{frame}");
            assert!(!expected, "{frame}");
        }
    }

    #[test]
    fn a_location_has_no_line_numbers() {
        assert_eq!(
            location("app/models/user.rb:42:in `full_name'"),
            "app/models/user.rb in full_name"
        );
        assert_eq!(
            location("app/models/user.rb:97:in 'User#full_name'"),
            "app/models/user.rb in User#full_name"
        );
        assert_eq!(
            location(
                "app/views/users/show.html.erb:3:in `_app_views_users_show_html_erb__1093_4401'"
            ),
            "app/views/users/show.html.erb in _app_views_users_show_html_erb___"
        );
        assert_eq!(
            location("File \"app/x.py\", line 10, in run"),
            "File \"app/x.py\", line , in run"
        );
        for frame in [
            "app/models/user.rb:42:in `full_name'",
            "  from /srv/a1/b.rb:7:3:in 'X#y2'",
            "File \"app/x.py\", line 10, in run",
            "é9:in ",
        ] {
            assert_eq!(Location::of(frame).len(), location(frame).len(), "{frame}");
        }
    }
}
