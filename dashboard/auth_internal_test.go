package dashboard

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSessionToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := newAuth("the-key", time.Hour)
	v := a.newSession(now)
	if strings.Contains(v, "the-key") || !strings.HasPrefix(v, sessionVersion+".") {
		t.Fatalf("session %q", v)
	}
	for _, c := range []struct {
		name string
		auth auth
		v    string
		at   time.Time
		want bool
	}{
		{"fresh", a, v, now, true},
		{"near the end", a, v, now.Add(time.Hour - time.Second), true},
		{"expired", a, v, now.Add(time.Hour), false},
		{"another key", newAuth("other-key", time.Hour), v, now, false},
		{"insecure (no key)", newAuth("", time.Hour), newAuth("", time.Hour).newSession(now), now, false},
		{"expiry moved", a, strings.Replace(v, "1800003600", "1800007200", 1), now, false},
		{"expiry too far ahead", newAuth("the-key", time.Minute), a.newSession(now), now, false},
		{"mac cut", a, v[:len(v)-1], now, false},
		{"other version", a, "v0" + v[2:], now, false},
		{"garbage", a, "garbage", now, false},
		{"empty", a, "", now, false},
	} {
		if got := c.auth.validSession(c.v, c.at); got != c.want {
			t.Errorf("%s: valid = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	for _, c := range []struct {
		headers []string
		want    bool
	}{
		{nil, true},
		{[]string{"Origin", "http://example.com:8080"}, true},
		{[]string{"Origin", "http://EXAMPLE.com:8080", "Sec-Fetch-Site", "same-origin"}, true},
		{[]string{"Sec-Fetch-Site", "none"}, true},
		{[]string{"Origin", "null", "Sec-Fetch-Site", "same-origin"}, true}, // Chromium under no-referrer
		{[]string{"Origin", "http://example.com:9999"}, false},
		{[]string{"Origin", "null"}, false},
		{[]string{"Sec-Fetch-Site", "same-site"}, false},
		{[]string{"Sec-Fetch-Site", "cross-site"}, false},
	} {
		r := httptest.NewRequest("POST", "http://example.com:8080/dashboard/login", nil)
		for i := 0; i+1 < len(c.headers); i += 2 {
			r.Header.Set(c.headers[i], c.headers[i+1])
		}
		if got := sameOrigin(r); got != c.want {
			t.Errorf("%v: %v, want %v", c.headers, got, c.want)
		}
	}
}
