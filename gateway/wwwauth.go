package gateway

import (
	"strings"
)

// authParam is one auth-param of a challenge (RFC 9110 11.2).
type authParam struct {
	name, value string
}

// bearerChallenge renders a WWW-Authenticate value for the Bearer scheme
// (RFC 6750 3), every value as a quoted-string in the order given; empty
// values are left out. It is the only place challenges are built, so that
// quoting is done once and right: a scope or URL holding a quote or a
// backslash cannot end the string early and smuggle in another parameter.
func bearerChallenge(params ...authParam) string {
	var b strings.Builder
	b.WriteString("Bearer")
	first := true
	for _, p := range params {
		if p.value == "" {
			continue
		}
		if first {
			b.WriteByte(' ')
			first = false
		} else {
			b.WriteString(", ")
		}
		b.WriteString(p.name)
		b.WriteString(`="`)
		writeQuotedContent(&b, p.value)
		b.WriteByte('"')
	}
	return b.String()
}

// writeQuotedContent writes s as the inside of a quoted-string: backslash
// and double quote are escaped with a backslash (quoted-pair); control
// characters, which a quoted-string cannot hold and which could split the
// header, become spaces.
func writeQuotedContent(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
}
