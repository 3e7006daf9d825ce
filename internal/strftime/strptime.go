package strftime

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Parse reads value by a Ruby strptime layout (what Fluentd's time_format
// means). Supported: %Y %C %y %m %d %e %j %H %k %I %l %M %S %L %N %3N %6N %9N
// %z %:z %Z %b %h %B %a %A %p %P %s %T %F %D %R %r %c %t %n %%. White space in
// the layout matches any run of white space. Without a zone in the layout or
// the value, loc applies.
func Parse(layout, value string, loc *time.Location) (time.Time, error) {
	p := ptime{month: 1, day: 1, loc: loc}
	v := value
	fail := func(what string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("time %q does not match %q: %s", value, layout, what)
	}
	for i := 0; i < len(layout); i++ {
		c := layout[i]
		if c == ' ' || c == '\t' || c == '\n' {
			v = strings.TrimLeft(v, " \t\n")
			continue
		}
		if c != '%' || i+1 == len(layout) {
			if len(v) == 0 || v[0] != c {
				return fail(fmt.Sprintf("expected %q", c))
			}
			v = v[1:]
			continue
		}
		i++
		d := layout[i]
		if d == ':' && i+1 < len(layout) && layout[i+1] == 'z' {
			i++
			d = 'z'
		}
		digits := 0
		if d >= '1' && d <= '9' && i+1 < len(layout) && layout[i+1] == 'N' {
			digits = int(d - '0')
			i++
			d = 'N'
		}
		var err error
		switch d {
		case 'Y':
			// As Ruby's strptime: a year followed at once by another number
			// (%Y%m%d) takes four digits, else as many as there are.
			maxDigits := 5
			if i+2 < len(layout) && layout[i+1] == '%' && strings.IndexByte("mdHMSjeIklLNy", layout[i+2]) >= 0 {
				maxDigits = 4
			}
			p.year, v, err = num(v, 1, maxDigits, true)
		case 'C':
			var cc int
			cc, v, err = num(v, 1, 2, false)
			p.year = cc*100 + p.year%100
		case 'y':
			var yy int
			yy, v, err = num(v, 1, 2, false)
			if yy < 69 {
				p.year = 2000 + yy
			} else {
				p.year = 1900 + yy
			}
		case 'm':
			p.month, v, err = num(v, 1, 2, false)
		case 'd', 'e':
			v = strings.TrimLeft(v, " ")
			p.day, v, err = num(v, 1, 2, false)
		case 'j':
			p.yday, v, err = num(v, 1, 3, false)
		case 'H', 'k':
			v = strings.TrimLeft(v, " ")
			p.hour, v, err = num(v, 1, 2, false)
		case 'I', 'l':
			v = strings.TrimLeft(v, " ")
			p.hour, v, err = num(v, 1, 2, false)
			p.twelve = true
		case 'M':
			p.min, v, err = num(v, 1, 2, false)
		case 'S':
			p.sec, v, err = num(v, 1, 2, false)
		case 'L':
			p.nsec, v, err = fraction(v, 3)
		case 'N':
			if digits == 0 {
				digits = 9
			}
			p.nsec, v, err = fraction(v, digits)
		case 'z':
			p.zone, v, err = zone(v)
			p.hasZone = err == nil
		case 'Z':
			var name string
			name, v = word(v)
			if name == "UTC" || name == "GMT" || name == "Z" {
				p.zone, p.hasZone = time.UTC, true
			} else if l, lerr := time.LoadLocation(name); lerr == nil {
				p.zone, p.hasZone = l, true
			}
		case 'b', 'h', 'B':
			p.month, v, err = monthName(v)
		case 'a', 'A':
			_, v = word(v)
		case 'p', 'P':
			var ap string
			ap, v = word(v)
			switch strings.ToUpper(ap) {
			case "AM":
				p.pm = 1
			case "PM":
				p.pm = 2
			default:
				err = fmt.Errorf("expected AM or PM")
			}
		case 's':
			var n int
			neg := strings.HasPrefix(v, "-")
			if neg {
				v = v[1:]
			}
			n, v, err = num(v, 1, 19, false)
			if neg {
				n = -n
			}
			p.unix, p.hasUnix = int64(n), true
		case 'T':
			var t time.Time
			if t, err = Parse("%H:%M:%S", take(&v, 8), time.UTC); err == nil {
				p.hour, p.min, p.sec = t.Hour(), t.Minute(), t.Second()
			}
		case 'F':
			var t time.Time
			if t, err = Parse("%Y-%m-%d", take(&v, 10), time.UTC); err == nil {
				p.year, p.month, p.day = t.Year(), int(t.Month()), t.Day()
			}
		case 'D':
			var t time.Time
			if t, err = Parse("%m/%d/%y", take(&v, 8), time.UTC); err == nil {
				p.year, p.month, p.day = t.Year(), int(t.Month()), t.Day()
			}
		case 'R':
			p.hour, v, err = num(v, 1, 2, false)
			if err == nil && strings.HasPrefix(v, ":") {
				p.min, v, err = num(v[1:], 1, 2, false)
			}
		case 'r':
			layoutRest := "%I:%M:%S %p"
			var t time.Time
			if t, err = Parse(layoutRest, take(&v, 11), time.UTC); err == nil {
				p.hour, p.min, p.sec = t.Hour(), t.Minute(), t.Second()
			}
		case 'c':
			var t time.Time
			if t, err = Parse("%a %b %e %H:%M:%S %Y", take(&v, 24), time.UTC); err == nil {
				p.year, p.month, p.day, p.hour, p.min, p.sec = t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute(), t.Second()
			}
		case 't', 'n':
			v = strings.TrimLeft(v, " \t\n")
		case '%':
			if !strings.HasPrefix(v, "%") {
				err = fmt.Errorf("expected %%")
			} else {
				v = v[1:]
			}
		default:
			return time.Time{}, fmt.Errorf("time_format %q: directive %%%c is not supported", layout, d)
		}
		if err != nil {
			return fail(fmt.Sprintf("%%%c: %v", d, err))
		}
	}
	if strings.TrimSpace(v) != "" {
		return fail(fmt.Sprintf("%q left over", v))
	}
	if err := p.check(); err != nil {
		return fail(err.Error())
	}
	return p.time(), nil
}

// check refuses fields out of range, as Ruby's strptime does, instead of
// letting time.Date roll month 13 into the next year.
func (p ptime) check() error {
	switch {
	case p.hasUnix:
		return nil
	case p.month < 1 || p.month > 12:
		return fmt.Errorf("month %d", p.month)
	case p.day < 1 || p.day > 31:
		return fmt.Errorf("day %d", p.day)
	case p.yday < 0 || p.yday > 366:
		return fmt.Errorf("day of year %d", p.yday)
	case p.hour < 0 || p.hour > 24, p.min < 0 || p.min > 59, p.sec < 0 || p.sec > 60:
		return fmt.Errorf("time of day %02d:%02d:%02d", p.hour, p.min, p.sec)
	}
	return nil
}

// take returns up to n bytes of *v and advances it past them.
func take(v *string, n int) string {
	if len(*v) < n {
		n = len(*v)
	}
	s := (*v)[:n]
	*v = (*v)[n:]
	return s
}

type ptime struct {
	year, month, day, yday int
	hour, min, sec, nsec   int
	twelve                 bool
	pm                     int // 0 none, 1 AM, 2 PM
	zone                   *time.Location
	hasZone                bool
	unix                   int64
	hasUnix                bool
	loc                    *time.Location
}

func (p ptime) time() time.Time {
	if p.hasUnix {
		return time.Unix(p.unix, int64(p.nsec))
	}
	loc := p.loc
	if p.hasZone {
		loc = p.zone
	}
	if loc == nil {
		loc = time.Local
	}
	hour := p.hour
	if p.twelve || p.pm != 0 {
		hour %= 12
		if p.pm == 2 {
			hour += 12
		}
	}
	if p.yday > 0 {
		return time.Date(p.year, 1, p.yday, hour, p.min, p.sec, p.nsec, loc)
	}
	return time.Date(p.year, time.Month(p.month), p.day, hour, p.min, p.sec, p.nsec, loc)
}

func num(v string, minDigits, maxDigits int, signed bool) (int, string, error) {
	i := 0
	if signed && i < len(v) && (v[i] == '-' || v[i] == '+') {
		i++
	}
	start := i
	for i < len(v) && i-start < maxDigits && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	if i-start < minDigits {
		return 0, v, fmt.Errorf("expected a number")
	}
	n, err := strconv.Atoi(v[:i])
	return n, v[i:], err
}

func fraction(v string, digits int) (int, string, error) {
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' && i < 9 {
		i++
	}
	if i == 0 {
		return 0, v, fmt.Errorf("expected fractional seconds")
	}
	_ = digits // Ruby reads as many digits as are there, up to nanoseconds
	s := v[:i] + strings.Repeat("0", 9-i)
	n, err := strconv.Atoi(s)
	return n, v[i:], err
}

func zone(v string) (*time.Location, string, error) {
	if strings.HasPrefix(v, "Z") {
		return time.UTC, v[1:], nil
	}
	if len(v) < 3 || (v[0] != '+' && v[0] != '-') {
		return nil, v, fmt.Errorf("expected a zone offset")
	}
	i := 1
	for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] == ':') && i < 6 {
		i++
	}
	loc, err := ParseZone(v[:i])
	return loc, v[i:], err
}

func word(v string) (string, string) {
	i := 0
	for i < len(v) && (v[i] >= 'a' && v[i] <= 'z' || v[i] >= 'A' && v[i] <= 'Z') {
		i++
	}
	return v[:i], v[i:]
}

func monthName(v string) (int, string, error) {
	w, rest := word(v)
	if len(w) >= 3 {
		for m := time.January; m <= time.December; m++ {
			name := m.String()
			if strings.EqualFold(w, name) || strings.EqualFold(w, name[:3]) {
				return int(m), rest, nil
			}
		}
	}
	return 0, v, fmt.Errorf("expected a month name")
}
