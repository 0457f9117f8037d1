package answer

import (
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

func init() {
	Register(Phone, parsePhone)
	Register(Email, parseEmail)
	Register(Zip, parseZip)
}

// parsePhone returns the number in E.164 form ("+12025550123"). A number
// without a country code is read in o.Region, "US" by default. Only phone
// characters are allowed around the digits: "call 555 1234 or 555 6789"
// is refused rather than picked apart.
func parsePhone(text string, o *Options) (v any, err error) {
	o = orDefault(o)
	s := strings.TrimSpace(text)
	if s == "" {
		return nil, fail(Phone, "no answer given")
	}
	if len(s) > 40 {
		return nil, fail(Phone, "not a phone number")
	}
	s = strings.TrimPrefix(s, "tel:")
	digits := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9':
			digits++
		case strings.IndexByte(" +-.()/", c) >= 0:
		default:
			return nil, fail(Phone, "not a phone number")
		}
	}
	if digits == 0 {
		return nil, fail(Phone, "not a phone number")
	}
	region := o.Region
	if region == "" {
		region = "US"
	}
	defer func() {
		// phonenumbers is a port of Java code; a panic in it on an odd
		// input must cost one answer, not the conversation.
		if recover() != nil {
			v, err = nil, fail(Phone, "not a phone number")
		}
	}()
	num, err := phonenumbers.Parse(s, strings.ToUpper(region))
	if err != nil {
		return nil, fail(Phone, "not a phone number")
	}
	if !phonenumbers.IsValidNumber(num) {
		return nil, fail(Phone, "not a valid phone number")
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// parseEmail returns a bare address ("ana@example.com") with its domain in
// lower case. The local part keeps its case: it may matter to the mail
// server. A display name ("Ana <ana@example.com>") is refused so that the
// saved value is exactly the address.
func parseEmail(text string, _ *Options) (any, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return nil, fail(Email, "no answer given")
	}
	if len(s) > maxAnswer {
		return nil, fail(Email, "not an email address")
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "mailto:"), ".")
	if strings.ContainsAny(s, "<> \t\r\n") {
		return nil, fail(Email, "not an email address")
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" {
		return nil, fail(Email, "not an email address")
	}
	at := strings.LastIndexByte(addr.Address, '@')
	if at <= 0 {
		return nil, fail(Email, "not an email address")
	}
	local, domain := addr.Address[:at], strings.ToLower(addr.Address[at+1:])
	if !validDomain(domain) {
		return nil, fail(Email, "the domain is not valid")
	}
	return local + "@" + domain, nil
}

// validDomain wants at least two host name labels, so "ana@localhost",
// "ana@example." and "ana@[10.0.0.1]" are refused; net/mail alone accepts
// them. Non-ASCII letters are allowed for internationalised domains.
func validDomain(d string) bool {
	if !strings.Contains(d, ".") {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= utf8.RuneSelf || c == '-' || isDigit(c) || 'a' <= c && c <= 'z') {
				return false
			}
		}
	}
	return true
}

// parseZip returns a US ZIP code, "12345" or "12345-6789". "12345 6789" and
// "123456789" are written the usual way.
func parseZip(text string, _ *Options) (any, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return nil, fail(Zip, "no answer given")
	}
	var d [9]byte
	n, sep := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			if n == len(d) {
				return nil, fail(Zip, "not a ZIP code")
			}
			d[n] = c
			n++
		case (c == '-' || c == ' ') && n == 5 && !sep:
			sep = true // one separator, and only after the fifth digit
		default:
			return nil, fail(Zip, "not a ZIP code")
		}
	}
	if (n != 5 && n != 9) || (sep && n != 9) {
		return nil, fail(Zip, "not a ZIP code")
	}
	if string(d[:5]) == "00000" {
		return nil, fail(Zip, "not a valid ZIP code")
	}
	if n == 5 {
		return string(d[:5]), nil
	}
	return string(d[:5]) + "-" + string(d[5:9]), nil
}
