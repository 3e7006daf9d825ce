// Package strftime formats times with Ruby's strftime directives, which
// Fluentd users write in time_format, path and time_slice_format.
package strftime

import (
	"fmt"
	"strconv"
	"time"
)

// Append appends t formatted by layout. Supported directives: %Y %C %y %m %d
// %e %j %H %k %I %l %M %S %L %N (%3N %6N %9N) %z %:z %Z %p %P %a %A %b %h %B
// %s %u %w %F %T %D %R %r %c %x %X %n %t %%. Unknown directives are copied
// through literally (Ruby does the same).
func Append(dst []byte, layout string, t time.Time) []byte {
	for i := 0; i < len(layout); i++ {
		c := layout[i]
		if c != '%' || i+1 == len(layout) {
			dst = append(dst, c)
			continue
		}
		i++
		d := layout[i]
		switch {
		case d == ':' && i+1 < len(layout) && layout[i+1] == 'z':
			i++
			dst = appendZone(dst, t, true)
			continue
		case d >= '1' && d <= '9' && i+1 < len(layout) && layout[i+1] == 'N':
			i++
			digits := int(d - '0')
			ns := fmt.Sprintf("%09d", t.Nanosecond())
			for len(ns) < digits {
				ns += "0"
			}
			dst = append(dst, ns[:digits]...)
			continue
		}
		dst = appendDirective(dst, d, t)
	}
	return dst
}

// Format returns t formatted by layout.
func Format(layout string, t time.Time) string { return string(Append(nil, layout, t)) }

func pad(dst []byte, v, width int, fill byte) []byte {
	var buf [20]byte
	s := strconv.AppendInt(buf[:0], int64(v), 10)
	for n := len(s); n < width; n++ {
		dst = append(dst, fill)
	}
	return append(dst, s...)
}

func appendZone(dst []byte, t time.Time, colon bool) []byte {
	_, off := t.Zone()
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	dst = append(dst, sign)
	dst = pad(dst, off/3600, 2, '0')
	if colon {
		dst = append(dst, ':')
	}
	return pad(dst, off%3600/60, 2, '0')
}

func hour12(h int) int {
	if h%12 == 0 {
		return 12
	}
	return h % 12
}

func appendDirective(dst []byte, d byte, t time.Time) []byte {
	switch d {
	case 'Y':
		return pad(dst, t.Year(), 4, '0')
	case 'C':
		return pad(dst, t.Year()/100, 2, '0')
	case 'y':
		return pad(dst, t.Year()%100, 2, '0')
	case 'm':
		return pad(dst, int(t.Month()), 2, '0')
	case 'd':
		return pad(dst, t.Day(), 2, '0')
	case 'e':
		return pad(dst, t.Day(), 2, ' ')
	case 'j':
		return pad(dst, t.YearDay(), 3, '0')
	case 'H':
		return pad(dst, t.Hour(), 2, '0')
	case 'k':
		return pad(dst, t.Hour(), 2, ' ')
	case 'I':
		return pad(dst, hour12(t.Hour()), 2, '0')
	case 'l':
		return pad(dst, hour12(t.Hour()), 2, ' ')
	case 'M':
		return pad(dst, t.Minute(), 2, '0')
	case 'S':
		return pad(dst, t.Second(), 2, '0')
	case 'L':
		return pad(dst, t.Nanosecond()/1e6, 3, '0')
	case 'N':
		return pad(dst, t.Nanosecond(), 9, '0')
	case 'z':
		return appendZone(dst, t, false)
	case 'Z':
		name, _ := t.Zone()
		return append(dst, name...)
	case 'p':
		if t.Hour() < 12 {
			return append(dst, "AM"...)
		}
		return append(dst, "PM"...)
	case 'P':
		if t.Hour() < 12 {
			return append(dst, "am"...)
		}
		return append(dst, "pm"...)
	case 'a':
		return append(dst, t.Weekday().String()[:3]...)
	case 'A':
		return append(dst, t.Weekday().String()...)
	case 'b', 'h':
		return append(dst, t.Month().String()[:3]...)
	case 'B':
		return append(dst, t.Month().String()...)
	case 's':
		return strconv.AppendInt(dst, t.Unix(), 10)
	case 'u':
		wd := int(t.Weekday())
		if wd == 0 {
			wd = 7
		}
		return strconv.AppendInt(dst, int64(wd), 10)
	case 'w':
		return strconv.AppendInt(dst, int64(t.Weekday()), 10)
	case 'F':
		return Append(dst, "%Y-%m-%d", t)
	case 'T', 'X':
		return Append(dst, "%H:%M:%S", t)
	case 'D', 'x':
		return Append(dst, "%m/%d/%y", t)
	case 'R':
		return Append(dst, "%H:%M", t)
	case 'r':
		return Append(dst, "%I:%M:%S %p", t)
	case 'c':
		return Append(dst, "%a %b %e %H:%M:%S %Y", t)
	case 'n':
		return append(dst, '\n')
	case 't':
		return append(dst, '\t')
	case '%':
		return append(dst, '%')
	}
	return append(dst, '%', d)
}

// SubSecond reports whether layout prints anything finer than seconds
// (%L, %N, %3N ...), so that callers may cache one rendering per second.
func SubSecond(layout string) bool {
	for i := 0; i+1 < len(layout); i++ {
		if layout[i] != '%' {
			continue
		}
		d := layout[i+1]
		if d == '%' {
			i++
			continue
		}
		if d == 'L' || d == 'N' || (d >= '1' && d <= '9') {
			return true
		}
	}
	return false
}

// HasTimeDirective reports whether layout contains a directive that varies
// with time (used to decide whether a path already carries a time slice).
func HasTimeDirective(layout string) bool {
	for i := 0; i+1 < len(layout); i++ {
		if layout[i] == '%' {
			if layout[i+1] == '%' {
				i++
				continue
			}
			return true
		}
	}
	return false
}
