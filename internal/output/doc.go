// Package output holds the io.Writers that sit between a running job's
// stdout/stderr pipes and the rest of servicekit.
//
// A job can print without limit, but the server's memory cannot grow with it,
// so both writers here are bounded no matter how much is written:
//
//   - Tail keeps only the last N bytes, for the "last output" shown with a
//     failed job, and counts everything so callers can say what was dropped.
//   - Lines turns the byte stream into log lines, cutting over-long lines
//     into pieces rather than buffering them whole.
//
// Both always report a complete write. A writer that returned an error would
// make the copier stop reading the pipe, and a job blocked on a full pipe
// would hang; losing log text is the lesser harm.
package output
