package main

import (
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	disks := "--disks=/dev/ubdb /dev/ubdc /dev/ubdd /dev/ubde /dev/ubdf"
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
		check   func(*config) bool
	}{
		{"defaults", []string{disks}, "", func(c *config) bool {
			return c.serial == 128 && c.calls == 64 && len(c.callers) == 2 && c.callers[1] == 64 && c.scale == 10000 &&
				c.volSize == gib && c.fioSize == gib && len(c.phases) == len(allPhases) && len(c.disks) == diskCount
		}},
		{"sizes", []string{disks, "--fio-size=2Gi", "--stage-size=512Mi"}, "", func(c *config) bool {
			return c.fioSize == 2*gib && c.stageSize == 512*mib
		}},
		{"some phases", []string{disks, "--phases=stage,fio"}, "", func(c *config) bool {
			return c.phases["stage"] && c.phases["fio"] && !c.phases["control"]
		}},
		{"callers", []string{disks, "--callers=4, 8", "--calls=8"}, "", func(c *config) bool {
			return len(c.callers) == 2 && c.callers[0] == 4 && c.callers[1] == 8
		}},
		{"too few disks", []string{"--disks=/dev/ubdb"}, "1 disks given, want 5", nil},
		{"a stray argument", []string{disks, "extra"}, "unexpected arguments", nil},
		{"no such phase", []string{disks, "--phases=control,warp"}, `no phase "warp"`, nil},
		{"one caller", []string{disks, "--callers=1"}, "at least 2", nil},
		{"fewer calls than callers", []string{disks, "--calls=16"}, "--calls 16 is fewer than --callers 64", nil},
		{"scale below its baseline", []string{disks, "--scale=50"}, "--scale 50: give more than --scale-small 100", nil},
		{"no serial calls", []string{disks, "--serial=0"}, "--serial 0", nil},
		{"a tiny stage", []string{disks, "--stage-size=100Mi"}, "xfs's smallest", nil},
		{"a region not in MiB", []string{disks, "--fio-size=100000000"}, "whole MiB", nil},
		{"a short fio run", []string{disks, "--fio-runtime=100ms"}, "at least 1s", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}
