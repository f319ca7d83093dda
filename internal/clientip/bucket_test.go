package clientip

import (
	"net/netip"
	"testing"
)

func TestBucket(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                      "192.0.2.7",
		"::ffff:192.0.2.7":               "192.0.2.7",
		"2001:db8:1:2::1":                "2001:db8:1:2::",
		"2001:db8:1:2:aaaa:bbbb:cccc:dd": "2001:db8:1:2::",
		"2001:db8:1:3::1":                "2001:db8:1:3::",
		"::1":                            "::",
	} {
		if got := Bucket(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("Bucket(%s) = %s, want %s", in, got, want)
		}
	}
	if Bucket(netip.Addr{}).IsValid() {
		t.Error("Bucket of no address is an address")
	}
}
