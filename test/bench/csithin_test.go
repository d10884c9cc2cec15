package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseCallDurations(t *testing.T) {
	log := strings.Join([]string{
		`I1202 17:48:11.119440     781 driver.go:179] "Call done" method="Probe" duration="812.5µs"`,
		`I1202 17:48:11.119440     781 driver.go:179] "Call done" method="CreateVolume" duration="31.628032ms"`,
		`I1202 17:48:11.128822     781 device.go:363] "Sent dm message" name="csi-thin-bench-ext4" message="create_thin 7"`,
		`I1202 17:48:11.131198     781 driver.go:179] "Call done" method="CreateVolume" duration="4.2ms"`,
		`I1202 17:48:11.131198     781 driver.go:179] "Call done" method="CreateSnapshot" duration="5ms"`,
		`I1202 17:48:11.139440     781 driver.go:179] "Call done" method="CreateVolume" duration="1.5s"`,
	}, "\n")
	for _, tc := range []struct {
		name    string
		method  string
		n       int
		want    Sample
		wantErr string
	}{
		{"the first n", "CreateVolume", 2, Sample{31628032 * time.Nanosecond, 4200 * time.Microsecond}, ""},
		{"all", "CreateVolume", 3, Sample{31628032 * time.Nanosecond, 4200 * time.Microsecond, 1500 * time.Millisecond}, ""},
		{"microseconds", "Probe", 1, Sample{812500 * time.Nanosecond}, ""},
		{"fewer than asked", "CreateSnapshot", 2, nil, "has 1 calls of CreateSnapshot, want 2"},
		{"none", "DeleteVolume", 1, nil, "has 0 calls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCallDurations([]byte(log), tc.method, tc.n)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("call %d took %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}
