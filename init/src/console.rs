//! Console output of PID 1 and of the services it forwards (format: `guest_console`).

/// Writes a line for `tag` to the console (PID 1's stdout is /dev/console).
pub fn write_tagged(tag: &str, text: &str) {
    guest_console::log(tag, text);
}

/// Logs a line from init itself.
pub fn log(text: &str) {
    guest_console::log("init", text);
}
