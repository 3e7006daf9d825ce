// Package kinesis holds the kinesis_firehose and kinesis_streams outputs,
// with aws-fluent-plugin-kinesis's parameters. Both retry exactly the
// records a batch call reports as failed, never resend a record that
// succeeded (the set of delivered records is kept with the chunk, across
// the buffer's retries and restarts), and never drop a record silently.
package kinesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/smithy-go"

	"github.com/sluice-log/sluice/internal/backoff"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
)

// record is one record to put: its data, partition key (streams), and the
// entries of the chunk it carries (several when packed).
type record struct {
	data    []byte
	key     string
	entries []int
}

// putFunc sends one batch and returns, per record, "" for success or the
// error code the service gave; err is a failure of the whole call.
type putFunc func(ctx context.Context, stream string, recs []record) ([]string, error)

// Stats are the outputs' counters.
type Stats struct {
	Records      atomic.Int64 // delivered
	Bytes        atomic.Int64
	Calls        atomic.Int64
	RetriedCalls atomic.Int64 // batch calls made again for failed records
	Retried      atomic.Int64 // records sent again
	Oversized    atomic.Int64 // records over the per-record limit, sent to @ERROR
	// Ambiguous counts records sent again after a call that failed with no
	// answer once it may have reached the service: the ones that may
	// arrive twice.
	Ambiguous atomic.Int64
}

// sender batches records within the service's limits and retries failed
// records with exponential backoff and jitter.
type sender struct {
	maxCount     int
	maxBytes     int
	retries      int
	resetBackoff bool
	put          putFunc
	log          *slog.Logger
	id           string
	stats        *Stats
	// backoffBase is the first retry's wait; it doubles per retry.
	backoffBase time.Duration
	// sizeOf is what a record counts towards the call limit.
	sizeOf func(record) int
}

const metaDone = "kinesis_done"

// send delivers recs in batches. When a batch's retries run out it returns
// an error: the buffer retries the chunk later, and only what is still
// undelivered goes again.
func (s *sender) send(ctx context.Context, c *plugin.Chunk, stream string, recs []record, done *plugin.EntrySet) error {
	for len(recs) > 0 {
		n, size := 0, 0
		for n < len(recs) && n < s.maxCount {
			sz := s.sizeOf(recs[n])
			if n > 0 && size+sz > s.maxBytes {
				break
			}
			size += sz
			n++
		}
		if err := s.batch(ctx, c, stream, recs[:n], done); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

func (s *sender) batch(ctx context.Context, c *plugin.Chunk, stream string, recs []record, done *plugin.EntrySet) error {
	pending := recs
	attempt := 0
	for {
		s.stats.Calls.Add(1)
		codes, err := s.put(ctx, stream, pending)
		var failed []record
		var lastCode string
		if err != nil {
			if permanent(err) {
				return &plugin.Permanent{Err: err}
			}
			failed, lastCode = pending, errorCode(err)
			if ambiguous(err) {
				s.stats.Ambiguous.Add(int64(len(pending)))
				s.log.Warn("a batch call failed without an answer after it may have reached the service; its records are sent again and may arrive twice",
					"output", s.id, "stream", stream, "records", len(pending), "err", err)
			}
		} else {
			delivered, events, bytes := 0, 0, 0 // counted once per call: flush threads share the counters
			for i, code := range codes {
				if code == "" {
					delivered++
					events += len(pending[i].entries)
					bytes += len(pending[i].data)
					for _, e := range pending[i].entries {
						done.Add(e)
					}
					continue
				}
				failed = append(failed, pending[i])
				lastCode = code
			}
			s.stats.Records.Add(int64(events))
			s.stats.Bytes.Add(int64(bytes))
			if delivered > 0 {
				plugin.Delivered(ctx, done.Count())
				if serr := done.Save(c, metaDone); serr != nil {
					return fmt.Errorf("keeping the delivered records with the chunk: %w", serr)
				}
				if s.resetBackoff {
					attempt = 0
				}
			}
		}
		if len(failed) == 0 {
			return nil
		}
		if attempt >= s.retries {
			if err == nil {
				err = fmt.Errorf("%d records failed (%s)", len(failed), lastCode)
			}
			return fmt.Errorf("%s: retries on the batch request exhausted, %d records left for the buffer to retry: %w", stream, len(failed), err)
		}
		attempt++
		wait := s.wait(attempt)
		s.stats.RetriedCalls.Add(1)
		s.stats.Retried.Add(int64(len(failed)))
		plugin.CountRetry(ctx)
		// The words of aws-fluent-plugin-kinesis, which operators search for.
		s.log.Warn(fmt.Sprintf("Retrying to request batch. Retry count: %d, Retry records: %d, Wait seconds %.2f",
			attempt, len(failed), wait.Seconds()), "output", s.id, "stream", stream, "error_code", lastCode)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pending = failed
	}
}

// wait is base * 2^(attempt-1), capped at 5 seconds, spread between half
// and the whole.
func (s *sender) wait(attempt int) time.Duration {
	return backoff.Exponential{Initial: s.backoffBase, Factor: 2, Max: 5 * time.Second, Low: 0.5, High: 1}.Delay(attempt, rand.Float64())
}

// ambiguous: no answer came (an answer, even an error, says what became
// of the call) and the request may have gone out.
func ambiguous(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) {
		return false
	}
	return transport.Ambiguous(err)
}

func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return "RequestError"
}

// permanent: a request the service will refuse however often it comes.
// Throttling, server errors, a missing stream or refused credentials are
// retried (an operator may fix the last two in time).
func permanent(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "InvalidArgumentException", "ValidationException", "SerializationException", "InvalidKMSResourceException":
			return true
		}
	}
	var ae *apiError
	return errors.As(err, &ae) && ae.status == http.StatusRequestEntityTooLarge
}
