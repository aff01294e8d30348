package scenario

import (
	"fmt"
	"math"
)

// Rate is how often a cell (kernel, scenario, offset) hung: HANGs over
// the trials that tested something (PASS, HANG, RECOVERED, CRASH), with
// the 95 % Wilson score interval. A RECOVERED trial stalled but did not
// hang, so it counts as tested and not hung (and apart in Recovered).
// MISSED and INFRA-ERROR trials are counted apart.
type Rate struct {
	Hangs  int `json:"hangs"`
	Tested int `json:"tested"` // PASS + HANG + RECOVERED + CRASH
	// Recovered: tested trials that stalled, then recovered.
	Recovered int `json:"recovered"`
	Missed    int `json:"missed"`
	// Unreached: anchored trials whose anchor never came (no cut).
	Unreached int     `json:"unreached,omitempty"`
	Infra     int     `json:"infra_errors"`
	Crash     int     `json:"crashes"`
	Lo        float64 `json:"lo"` // 95 % Wilson interval of Hangs/Tested
	Hi        float64 `json:"hi"`
}

// RateOf counts the outcomes.
func RateOf(outcomes []Outcome) Rate {
	var r Rate
	for _, o := range outcomes {
		switch o {
		case Hang:
			r.Hangs++
			r.Tested++
		case Pass:
			r.Tested++
		case Recovered:
			r.Recovered++
			r.Tested++
		case Crash:
			r.Crash++
			r.Tested++
		case Missed:
			r.Missed++
		case Unreached:
			r.Unreached++
		default:
			r.Infra++
		}
	}
	r.Lo, r.Hi = Wilson(r.Hangs, r.Tested)
	return r
}

// Value is Hangs/Tested (0 with nothing tested).
func (r Rate) Value() float64 {
	if r.Tested == 0 {
		return 0
	}
	return float64(r.Hangs) / float64(r.Tested)
}

// String reads "2/3 hung (67 %, 95 % CI 21-94 %), 1 missed".
func (r Rate) String() string {
	if r.Tested == 0 {
		s := "nothing tested"
		if r.Missed > 0 {
			s += fmt.Sprintf(", %d missed", r.Missed)
		}
		if r.Unreached > 0 {
			s += fmt.Sprintf(", %d unreached", r.Unreached)
		}
		return s
	}
	s := fmt.Sprintf("%d/%d hung (%.0f %%, 95 %% CI %.0f-%.0f %%)", r.Hangs, r.Tested, 100*r.Value(), 100*r.Lo, 100*r.Hi)
	if r.Recovered > 0 {
		s += fmt.Sprintf(", %d recovered", r.Recovered)
	}
	if r.Missed > 0 {
		s += fmt.Sprintf(", %d missed", r.Missed)
	}
	if r.Unreached > 0 {
		s += fmt.Sprintf(", %d unreached", r.Unreached)
	}
	return s
}

// Wilson is the 95 % Wilson score interval for k successes in n trials
// (E. B. Wilson, 1927): unlike the normal approximation it stays inside
// [0,1] and is honest for small n and for rates near 0 or 1.
func Wilson(k, n int) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	const z = 1.959963984540054 // 97.5th percentile of the normal
	p := float64(k) / float64(n)
	nf := float64(n)
	den := 1 + z*z/nf
	center := (p + z*z/(2*nf)) / den
	half := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / den
	return math.Max(0, center-half), math.Min(1, center+half)
}
