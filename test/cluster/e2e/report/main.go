// Command report sums up the JUnit reports of e2e.test runs (one per shard)
// for one driver: how many of its specs passed, failed and were skipped,
// with the reason for each skip.
//
//	report [-driver NAME] [-exclude 'REGEXP=REASON']... [-dry-run] [-list FILE] [-texts FILE] JUNIT...
//
// A spec is counted once across the reports: where one shard ran it and
// another filtered it out, the run counts. A spec that the run's own
// --ginkgo.skip left out is "excluded" with the reason of the -exclude
// whose REGEXP matches its name; the suite's runtime skips carry their
// reason in the report. Suite nodes that failed (BeforeSuite, AfterSuite,
// ...) count as failures. It exits 1 if a spec failed, if no spec of the
// driver passed, or if an excluded spec matches no -exclude.
package main

import (
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

type junit struct {
	Suites []struct {
		Cases []testcase `xml:"testcase"`
	} `xml:"testsuite"`
}

type testcase struct {
	Name    string `xml:"name,attr"`
	Status  string `xml:"status,attr"`
	Time    string `xml:"time,attr"`
	Skipped *struct {
		Message string `xml:"message,attr"`
	} `xml:"skipped"`
	Failure *struct {
		Message string `xml:"message,attr"`
	} `xml:"failure"`
	Error *struct {
		Message string `xml:"message,attr"`
	} `xml:"error"`
}

// result is a spec's outcome; a higher rank wins when reports disagree.
type result struct {
	rank   int // 0 filtered out, 1 skipped at run time, 2 passed, 3 failed
	status string
	reason string
}

type exclusion struct {
	re     *regexp.Regexp
	reason string
}

type exclusions []exclusion

func (e *exclusions) String() string { return fmt.Sprint(len(*e)) }

func (e *exclusions) Set(s string) error {
	expr, reason, ok := strings.Cut(s, "=")
	if !ok || reason == "" {
		return fmt.Errorf("%q: want REGEXP=REASON", s)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return err
	}
	*e = append(*e, exclusion{re, reason})
	return nil
}

func main() {
	driver := flag.String("driver", "csi-thin.io", "count the specs of this driver ([Driver: NAME] in their names)")
	dry := flag.Bool("dry-run", false, "the reports are of --ginkgo.dry-run: count the specs selected, not outcomes")
	list := flag.String("list", "", "write the selected specs' names to this file, sorted")
	texts := flag.String("texts", "", "write the selected specs' texts, what --ginkgo.focus matches (the name without its labels), to this file, sorted")
	var excl exclusions
	flag.Var(&excl, "exclude", "REGEXP=REASON: the specs the run left out with --ginkgo.skip, and why (repeatable)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: report [-driver NAME] [-exclude 'REGEXP=REASON']... [-dry-run] [-list FILE] [-texts FILE] JUNIT...")
		os.Exit(2)
	}
	specs := map[string]result{}
	var suiteFailures []string
	for _, file := range flag.Args() {
		data, err := os.ReadFile(file)
		if err != nil {
			fail(err)
		}
		var j junit
		if err := xml.Unmarshal(data, &j); err != nil {
			fail(fmt.Errorf("%s: %w", file, err))
		}
		for _, s := range j.Suites {
			for _, c := range s.Cases {
				r := outcome(c)
				if !strings.HasPrefix(c.Name, "[It] ") {
					if r.rank == 3 {
						suiteFailures = append(suiteFailures, fmt.Sprintf("%s (%s): %s: %s", c.Name, file, r.status, r.reason))
					}
					continue
				}
				if !strings.Contains(c.Name, "[Driver: "+*driver+"]") {
					continue
				}
				name := strings.TrimPrefix(c.Name, "[It] ")
				if old, ok := specs[name]; !ok || r.rank > old.rank {
					specs[name] = r
				}
			}
		}
	}
	if len(specs) == 0 {
		fail(fmt.Errorf("the reports have no spec of driver %s", *driver))
	}

	var passed, failed, runtimeSkips []string
	excluded := map[string][]string{}
	var unexplained []string
	for name, r := range specs {
		switch r.rank {
		case 3:
			failed = append(failed, name+"\n      "+r.status+": "+firstLine(r.reason))
		case 2:
			passed = append(passed, name)
		case 1:
			runtimeSkips = append(runtimeSkips, name+"\n      "+r.reason)
		default:
			reason := ""
			for _, e := range excl {
				if e.re.MatchString(name) {
					reason = e.reason
					break
				}
			}
			if reason == "" {
				unexplained = append(unexplained, name)
				continue
			}
			excluded[reason] = append(excluded[reason], name)
		}
	}
	for _, l := range [][]string{passed, failed, runtimeSkips, unexplained} {
		sort.Strings(l)
	}
	nExcluded := 0
	for _, l := range excluded {
		nExcluded += len(l)
	}

	if *list != "" {
		if err := os.WriteFile(*list, []byte(strings.Join(passed, "\n")+"\n"), 0o644); err != nil {
			fail(err)
		}
	}
	if *texts != "" {
		// Ginkgo's JUnit name is "[It] " + the spec's text + " [" + its
		// labels + "]"; the suite's specs all have the driver's label.
		labels := regexp.MustCompile(` \[Driver: ` + regexp.QuoteMeta(*driver) + `[],][^]]*\]?$`)
		var t []string
		for _, n := range passed {
			t = append(t, labels.ReplaceAllString(n, ""))
		}
		if err := os.WriteFile(*texts, []byte(strings.Join(t, "\n")+"\n"), 0o644); err != nil {
			fail(err)
		}
	}
	if *dry {
		fmt.Printf("%d specs of %s: %d selected, %d excluded, %d in no shard\n",
			len(specs), *driver, len(passed), nExcluded, len(unexplained))
	} else {
		fmt.Printf("%d specs of %s: %d passed, %d failed, %d skipped (%d by the suite at run time, %d excluded by the run)\n",
			len(specs), *driver, len(passed), len(failed), len(runtimeSkips)+nExcluded, len(runtimeSkips), nExcluded)
	}
	reasons := make([]string, 0, len(excluded))
	for r := range excluded {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Printf("\nexcluded, %d: %s\n", len(excluded[r]), r)
		sort.Strings(excluded[r])
		for _, n := range excluded[r] {
			fmt.Printf("  - %s\n", n)
		}
	}
	section("skipped by the suite", runtimeSkips)
	section("FAILED", failed)
	section("filtered out by no exclusion (a spec no shard selected?)", unexplained)
	for _, f := range suiteFailures {
		fmt.Printf("\nFAILED suite node: %s\n", f)
	}

	switch {
	case len(failed) > 0 || len(suiteFailures) > 0:
		os.Exit(1)
	case len(unexplained) > 0:
		fmt.Fprintf(os.Stderr, "report: %d specs were left out without a reason\n", len(unexplained))
		os.Exit(1)
	case len(passed) == 0:
		fmt.Fprintf(os.Stderr, "report: no spec of %s ran\n", *driver)
		os.Exit(1)
	}
}

// outcome reads a test case's status. Ginkgo marks a spec its filters left
// out as skipped with the message "skipped"; a spec that called Skip has
// "skipped - <its reason>".
func outcome(c testcase) result {
	switch c.Status {
	case "passed":
		return result{rank: 2, status: c.Status}
	case "skipped":
		msg := ""
		if c.Skipped != nil {
			msg = c.Skipped.Message
		}
		if reason, ok := strings.CutPrefix(msg, "skipped - "); ok {
			return result{rank: 1, status: c.Status, reason: strings.TrimSpace(reason)}
		}
		return result{rank: 0, status: c.Status}
	case "pending":
		return result{rank: 0, status: c.Status}
	default: // failed, panicked, timedout, interrupted, aborted
		msg := ""
		if c.Failure != nil {
			msg = c.Failure.Message
		} else if c.Error != nil {
			msg = c.Error.Message
		}
		return result{rank: 3, status: c.Status, reason: msg}
	}
}

func section(title string, lines []string) {
	if len(lines) == 0 {
		return
	}
	fmt.Printf("\n%s, %d:\n", title, len(lines))
	for _, l := range lines {
		fmt.Printf("  - %s\n", l)
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "report:", err)
	os.Exit(2)
}
