// Package bench is `mailgate bench`: it measures mailgate's import path
// against the raw ceilings of its backing services on this machine.
//
// Each scenario gets a fresh world, wired as `mailgate serve` wires it:
//
//	Microsoft 365 simulator (graphtest, in-process, loopback HTTP)
//	  ─▶ graph.Client (app-only tokens) ─▶ importer.SyncNow / Run
//	  ─▶ archive store (MinIO child process; the directory without it)
//	  ─▶ archive.Publisher ─▶ embedded NATS JetStream (file storage, SyncAlways)
//
// and measures wall time, Graph requests (counted by the simulator), CPU
// time (getrusage) and peak RSS (VmHWM, reset through /proc/self/clear_refs
// before each measurement). The same documents are then put with minio-go's
// PutObject and the same number of events published to JetStream, one at a
// time as the importer works one mailbox, and mailgate/raw ratios are
// printed beside issue 7's goals.
//
// The simulator runs in the measured process, so its work is part of the
// CPU time. Its mail content lives outside the Go heap (see arena) and is
// in place before the measurement starts, so the RSS increase a scenario
// reports is mailgate's (and the embedded NATS server's), while the
// absolute VmHWM also holds the simulator's copy of the mailbox.
package bench
