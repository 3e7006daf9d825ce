package tail

import (
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/parser"
)

// GroupSection is in_tail's <group>: files are put in groups by what
// pattern's named groups capture from their paths (a Kubernetes pod's
// namespace and name by default), and each group may read at most limit
// lines per rate_period, shared equally by its files. A file over its
// share stops being read until the period is over; nothing is dropped.
type GroupSection struct {
	Pattern    string        `conf:"pattern" desc:"A regular expression whose named groups pick the values files are grouped by; Fluentd's default reads podname, namespace, container and docker_id from /var/log/containers/ paths."`
	RatePeriod time.Duration `conf:"rate_period" desc:"The period each group's limit is for."`
}

// GroupRule is a <rule> in <group>.
type GroupRule struct {
	Match map[string]string `conf:"match" desc:"Named group to regular expression (a JSON object, values as /re/): a file is in this rule's group when each matches what the pattern captured. Unset: namespace and podname, any value."`
	Limit int               `conf:"limit" desc:"The most lines the group's files may read together per rate_period (-1: no limit; 0: none)."`
}

// defaultGroupPattern is Fluentd's default <group> pattern.
const defaultGroupPattern = `/^\/var\/log\/containers\/(?<podname>[a-z0-9]([-a-z0-9]*[a-z0-9])?(\/[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)_(?<namespace>[^_]+)_(?<container>.+)-(?<docker_id>[a-z0-9]{64})\.log$/`

func newGroupSection() *GroupSection {
	return &GroupSection{Pattern: defaultGroupPattern, RatePeriod: 5 * time.Second}
}

// groups assigns files to their rule's group.
type groups struct {
	pattern *regexp.Regexp
	period  time.Duration
	rules   []groupRule // the most specific (most match keys) first
	open    *group      // files no rule takes: no limit
}

type groupRule struct {
	match map[string]*regexp.Regexp
	g     *group
}

// group is one rule's files; limit is shared by the files in it now.
type group struct {
	limit  int
	period time.Duration
	mu     sync.Mutex
	files  int // guarded by mu
}

func newGroups(el *config.Element) (*groups, error) {
	sec := newGroupSection()
	if err := config.Decode(el, sec); err != nil {
		return nil, err
	}
	re, err := parser.CompileRuby(sec.Pattern)
	if err != nil {
		return nil, fmt.Errorf("<group> pattern: %w", err)
	}
	if sec.RatePeriod <= 0 {
		return nil, fmt.Errorf("<group> rate_period must be positive")
	}
	gs := &groups{pattern: re, period: sec.RatePeriod, open: &group{limit: -1, period: sec.RatePeriod}}
	rules := el.Sections("rule")
	if len(rules) == 0 {
		return nil, fmt.Errorf("<group> needs at least one <rule>")
	}
	for _, rel := range rules {
		r := GroupRule{Limit: -1}
		if err := config.Decode(rel, &r); err != nil {
			return nil, err
		}
		if r.Limit < -1 {
			return nil, fmt.Errorf("<rule> limit must be -1 or more")
		}
		if r.Match == nil {
			r.Match = map[string]string{"namespace": "/.*/", "podname": "/.*/"}
		}
		gr := groupRule{match: map[string]*regexp.Regexp{}, g: &group{limit: r.Limit, period: sec.RatePeriod}}
		for k, v := range r.Match {
			m, err := parser.CompileRuby(v)
			if err != nil {
				return nil, fmt.Errorf("<rule> match %s: %w", k, err)
			}
			gr.match[k] = m
		}
		gs.rules = append(gs.rules, gr)
	}
	sort.SliceStable(gs.rules, func(i, j int) bool { return len(gs.rules[i].match) > len(gs.rules[j].match) })
	return gs, nil
}

// of is the group of path: the first rule each of whose expressions
// matches what the pattern captured for its name; else no limit.
func (gs *groups) of(path string) *group {
	m := gs.pattern.FindStringSubmatch(path)
	if m == nil {
		return gs.open
	}
	captured := map[string]string{}
	for i, name := range gs.pattern.SubexpNames() {
		if name != "" {
			captured[name] = m[i]
		}
	}
	for _, r := range gs.rules {
		ok := true
		for k, re := range r.match {
			if !re.MatchString(captured[k]) {
				ok = false
				break
			}
		}
		if ok {
			return r.g
		}
	}
	return gs.open
}

func (g *group) join(delta int) {
	g.mu.Lock()
	g.files += delta
	g.mu.Unlock()
}

// share is one file's lines per period.
func (g *group) share() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.limit / max(1, g.files)
}

// quota is a file's count of lines within its group's period.
type quota struct {
	g     *group
	start time.Time
	lines int
}

// take reports whether one more line may be read now, and if not, how
// long until the period ends. Without a limit it costs a comparison: it
// is called for every line.
func (q *quota) take() (bool, time.Duration) {
	if q.g == nil || q.g.limit < 0 {
		return true, 0
	}
	now := time.Now()
	if q.start.IsZero() || now.Sub(q.start) >= q.g.period {
		q.start, q.lines = now, 0
	}
	if q.lines < q.g.share() {
		q.lines++
		return true, 0
	}
	return false, q.g.period - now.Sub(q.start)
}
