package elasticsearch

import (
	"encoding/json"
	"errors"
	"fmt"
)

// itemResult is one document's outcome in a _bulk response.
type itemResult struct {
	status int
	typ    string // error.type
	reason string // error.reason
}

// bulkQuery asks for only what is read back: whether anything failed, and
// each item's status and error. Elasticsearch and OpenSearch honour it;
// a server that does not still answers in the full shape, which reads the
// same.
const bulkQuery = "filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason"

// parseBulk reads a _bulk response for want documents. ok reports that
// every document was taken (errors false), in which case items is nil.
func parseBulk(body []byte, want int) (items []itemResult, ok bool, err error) {
	var resp struct {
		Errors *bool             `json:"errors"`
		Items  []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, false, fmt.Errorf("the _bulk response is not JSON: %w", err)
	}
	if resp.Errors == nil {
		return nil, false, errors.New("the _bulk response has no errors field")
	}
	if !*resp.Errors {
		return nil, true, nil
	}
	if len(resp.Items) != want {
		return nil, false, fmt.Errorf("the _bulk response has %d items for %d documents", len(resp.Items), want)
	}
	items = make([]itemResult, len(resp.Items))
	for i, raw := range resp.Items {
		// Each item is {"<op>": {...}}, one key.
		var byOp map[string]struct {
			Status int             `json:"status"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(raw, &byOp); err != nil || len(byOp) != 1 {
			return nil, false, fmt.Errorf("the _bulk response's item %d is not {\"op\": {...}}", i)
		}
		for _, it := range byOp {
			items[i].status = it.Status
			items[i].typ, items[i].reason = parseError(it.Error)
		}
	}
	return items, false, nil
}

// parseError reads an item's error: an object with type and reason, or a
// string (Elasticsearch before 5).
func parseError(raw json.RawMessage) (typ, reason string) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", ""
	}
	var obj struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return obj.Type, obj.Reason
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return "", s
	}
	return "", string(raw)
}

// outcome says what becomes of a document after its item's status.
type outcome int

const (
	taken   outcome = iota // the cluster has it
	refused                // its content was refused: @ERROR, never retried
	retry                  // refused for capacity or a server error: retried
	abort                  // an unrecoverable_error_types error: the chunk is given up
)

func (o *Output) classify(it itemResult, op string) outcome {
	switch {
	case it.status >= 200 && it.status < 300:
		return taken
	case it.status == 429 || it.typ == "es_rejected_execution_exception":
		// Capacity: retried even when listed in unrecoverable_error_types.
		return retry
	case o.unrecoverable[it.typ]:
		return abort
	case it.status >= 500:
		return retry
	case it.status == 409 && op == "create":
		return refused // the document exists: a duplicate
	case it.status >= 400:
		return refused
	}
	return retry
}
