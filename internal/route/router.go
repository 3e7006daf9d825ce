package route

import (
	"sync"
	"sync/atomic"
)

// Route is what handles one tag: the filters that apply, in order, and the
// output of the first matching <match>. A Route is immutable once built.
type Route[F, O any] struct {
	Filters []F
	Output  O
	// Matched is false when no <match> takes the tag; the events are
	// dropped and counted by the caller.
	Matched bool
}

type rule[F, O any] struct {
	pattern  *Pattern
	isFilter bool
	filter   F
	output   O
}

// DefaultCacheSize bounds the per-router tag cache. Tags are chosen by
// clients, so the cache must not grow with them.
const DefaultCacheSize = 8192

// Router resolves tags for one label (or the root). Rules are added in
// file order before the first Lookup; Lookup is safe for concurrent use.
type Router[F, O any] struct {
	rules []rule[F, O]

	mu    sync.RWMutex
	cache map[string]*Route[F, O] // guarded by mu; reset when full
	limit int

	resets atomic.Int64
}

// NewRouter returns an empty router whose cache holds at most cacheSize
// tags (DefaultCacheSize if cacheSize <= 0).
func NewRouter[F, O any](cacheSize int) *Router[F, O] {
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	return &Router[F, O]{cache: make(map[string]*Route[F, O]), limit: cacheSize}
}

// AddFilter appends a <filter> rule.
func (r *Router[F, O]) AddFilter(p *Pattern, f F) {
	r.rules = append(r.rules, rule[F, O]{pattern: p, isFilter: true, filter: f})
}

// AddMatch appends a <match> rule.
func (r *Router[F, O]) AddMatch(p *Pattern, o O) {
	r.rules = append(r.rules, rule[F, O]{pattern: p, output: o})
}

// Lookup returns the route for tag. A cache hit takes a read lock and
// allocates nothing.
func (r *Router[F, O]) Lookup(tag string) *Route[F, O] {
	r.mu.RLock()
	rt, ok := r.cache[tag]
	r.mu.RUnlock()
	if ok {
		return rt
	}
	rt = r.resolve(tag)
	r.mu.Lock()
	if len(r.cache) >= r.limit {
		clear(r.cache)
		r.resets.Add(1)
	}
	r.cache[tag] = rt
	r.mu.Unlock()
	return rt
}

// CacheResets counts how often the cache was emptied for being full.
func (r *Router[F, O]) CacheResets() int64 { return r.resets.Load() }

// resolve applies Fluentd's rule: the first <match> in file order wins, and
// the <filter>s that match and stand before it apply in order.
func (r *Router[F, O]) resolve(tag string) *Route[F, O] {
	rt := &Route[F, O]{}
	for _, ru := range r.rules {
		if !ru.pattern.Match(tag) {
			continue
		}
		if ru.isFilter {
			rt.Filters = append(rt.Filters, ru.filter)
			continue
		}
		rt.Output = ru.output
		rt.Matched = true
		return rt
	}
	// No match: filters are not run for events that go nowhere.
	rt.Filters = nil
	return rt
}
