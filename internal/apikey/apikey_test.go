package apikey

import (
	"net/http/httptest"
	"testing"
)

func TestValid(t *testing.T) {
	const key = "s3cret-key"
	for _, tc := range []struct {
		name, header, value string
		want                bool
	}{
		{"bearer", "Authorization", "Bearer s3cret-key", true},
		{"bearer lowercase scheme", "Authorization", "bearer s3cret-key", true},
		{"x-api-key", "X-API-Key", "s3cret-key", true},
		{"wrong key", "Authorization", "Bearer s3cret-kex", false},
		{"prefix of key", "X-API-Key", "s3cret", false},
		{"basic scheme", "Authorization", "Basic s3cret-key", false},
		{"none", "", "", false},
	} {
		r := httptest.NewRequest("GET", "/api/x", nil)
		if tc.header != "" {
			r.Header.Set(tc.header, tc.value)
		}
		if got := Valid(r, key); got != tc.want {
			t.Errorf("%s: Valid = %v, want %v", tc.name, got, tc.want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-API-Key", "")
	if Valid(r, "") {
		t.Error("an empty configured key matched an empty header")
	}
}

func TestGenerate(t *testing.T) {
	a, b := Generate(), Generate()
	if a == b || len(a) != 43 {
		t.Fatalf("Generate gave %q and %q", a, b)
	}
}
