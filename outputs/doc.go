// Package outputs holds the project's benthos outputs: delta_lake, a thin
// adapter from benthos batches to the Delta Lake engine, and smtp, which
// sends each message as an e-mail (the alerts' e-mail notifier) with the
// standard library's net/smtp. Import it for its registrations.
package outputs
