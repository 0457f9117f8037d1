package answer

import (
	"errors"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
	"weak"
)

// newYork is the clinic's zone in every test; testNow is a Sunday.
var (
	newYork = mustZone("America/New_York")
	testNow = time.Date(2026, 11, 29, 10, 0, 0, 0, newYork)
)

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func ptr(f float64) *float64 { return &f }

// day is midnight of a date in the clinic's zone.
func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, newYork) }

// answerCase is one real answer. Options, when set, replace the table's.
type answerCase struct {
	Label       string
	Input       string
	Options     *Options
	Expected    any
	ExpectedErr string // the *Error's Reason; "" when the answer fits
}

// kindTable holds the answers of one kind and the options they are parsed with.
type kindTable struct {
	Options *Options
	Cases   []answerCase
}

var weekdays = []Option{
	{Value: "mon", Label: "Monday", Synonyms: []string{"lunes"}},
	{Value: "tue", Label: "Tuesday", Synonyms: []string{"martes"}},
	{Value: "wed", Label: "Wednesday", Synonyms: []string{"weds", "miércoles"}},
	{Value: "any", Label: "Any day"},
}

// tables has one table per registered kind; TestEveryKindHasTable keeps it so.
var tables = map[string]kindTable{
	Text: {Options: &Options{Min: ptr(2), Max: ptr(20)}, Cases: []answerCase{
		{Label: "Name", Input: "Ana", Expected: "Ana"},
		{Label: "TrimsSpaces", Input: "  Ana María  ", Expected: "Ana María"},
		{Label: "TrimsTabsAndNewlines", Input: "\tDr. O'Neil\n", Expected: "Dr. O'Neil"},
		{Label: "KeepsInnerNewline", Input: "line one\nline two", Expected: "line one\nline two"},
		{Label: "Digits", Input: "12345", Expected: "12345"},
		{Label: "Emoji", Input: "👍👍", Expected: "👍👍"},
		{Label: "MinLengthExactly", Input: "ab", Expected: "ab"},
		{Label: "MaxLengthExactly", Input: "abcdefghijabcdefghij", Expected: "abcdefghijabcdefghij"},
		{Label: "MaxCountsRunesNotBytes", Input: strings.Repeat("é", 20), Expected: strings.Repeat("é", 20)},
		{Label: "Sentence", Input: "I have chest pain", Expected: "I have chest pain"},
		{Label: "InvalidUTF8Replaced", Input: "\xff\xfeab", Expected: "\uFFFDab"},
		{Label: "NULDropped", Input: "a\x00b", Expected: "ab"},
		{Label: "NoBoundsOneRune", Input: "x", Options: &Options{}, Expected: "x"},
		{Label: "NilOptions", Input: " y ", Options: nil, Expected: "y"},
		{Label: "Empty", Input: "", ExpectedErr: "no answer given"},
		{Label: "OnlySpaces", Input: "  \n ", ExpectedErr: "no answer given"},
		{Label: "OnlyNUL", Input: "\x00", ExpectedErr: "no answer given"},
		{Label: "TooShort", Input: "A", ExpectedErr: "shorter than the minimum of 2 characters"},
		{Label: "ShortAfterTrim", Input: "  A  ", ExpectedErr: "shorter than the minimum of 2 characters"},
		{Label: "TooLong", Input: "abcdefghijabcdefghijk", ExpectedErr: "longer than the maximum of 20 characters"},
		{Label: "TooLongRunes", Input: strings.Repeat("ñ", 21), ExpectedErr: "longer than the maximum of 20 characters"},
	}},

	Number: {Options: &Options{}, Cases: []answerCase{
		{Label: "Integer", Input: "12", Expected: 12.0},
		{Label: "Decimal", Input: "12.5", Expected: 12.5},
		{Label: "Negative", Input: "-3", Expected: -3.0},
		{Label: "PlusSign", Input: "+5", Expected: 5.0},
		{Label: "LeadingDot", Input: ".5", Expected: 0.5},
		{Label: "Thousands", Input: "1,200", Expected: 1200.0},
		{Label: "ThousandsAndDecimal", Input: "1,234,567.5", Expected: 1234567.5},
		{Label: "SentenceDot", Input: "12.", Expected: 12.0},
		{Label: "Spaces", Input: " 7 ", Expected: 7.0},
		{Label: "EnglishWord", Input: "twelve", Expected: 12.0},
		{Label: "EnglishWordCapitalised", Input: "Twelve.", Expected: 12.0},
		{Label: "Zero", Input: "zero", Expected: 0.0},
		{Label: "SpanishWord", Input: "doce", Expected: 12.0},
		{Label: "SpanishWordAccent", Input: "dieciséis", Expected: 16.0},
		{Label: "SpanishTwenty", Input: "veinte", Expected: 20.0},
		{Label: "WithinBounds", Input: "120", Options: &Options{Min: ptr(0), Max: ptr(120)}, Expected: 120.0},
		{Label: "AboveMax", Input: "150", Options: &Options{Min: ptr(0), Max: ptr(120)}, ExpectedErr: "above the maximum of 120"},
		{Label: "BelowMin", Input: "-1", Options: &Options{Min: ptr(0), Max: ptr(120)}, ExpectedErr: "below the minimum of 0"},
		{Label: "BelowDecimalMin", Input: "0.4", Options: &Options{Min: ptr(0.5)}, ExpectedErr: "below the minimum of 0.5"},
		{Label: "DecimalComma", Input: "1,5", ExpectedErr: "has a comma that is not a thousands separator"},
		{Label: "ShortGroup", Input: "1,20", ExpectedErr: "has a comma that is not a thousands separator"},
		{Label: "LongGroup", Input: "12,0000", ExpectedErr: "has a comma that is not a thousands separator"},
		{Label: "LeadingComma", Input: ",5", ExpectedErr: "has a comma that is not a thousands separator"},
		{Label: "WordAboveTwenty", Input: "twenty one", ExpectedErr: "not a number"},
		{Label: "Unit", Input: "150 lbs", ExpectedErr: "not a number"},
		{Label: "Exponent", Input: "1e5", ExpectedErr: "not a number"},
		{Label: "Hex", Input: "0x10", ExpectedErr: "not a number"},
		{Label: "NaN", Input: "NaN", ExpectedErr: "not a number"},
		{Label: "Infinity", Input: "inf", ExpectedErr: "not a number"},
		{Label: "TwoDots", Input: "1.2.3", ExpectedErr: "not a number"},
		{Label: "SignOnly", Input: "-", ExpectedErr: "not a number"},
		{Label: "Empty", Input: "", ExpectedErr: "no answer given"},
		{Label: "Huge", Input: strings.Repeat("9", 300), ExpectedErr: "not a number"},
	}},

	Integer: {Options: &Options{}, Cases: []answerCase{
		{Label: "Digits", Input: "3", Expected: 3},
		{Label: "Negative", Input: "-3", Expected: -3},
		{Label: "Plus", Input: "+7", Expected: 7},
		{Label: "LeadingZeros", Input: "007", Expected: 7},
		{Label: "Thousands", Input: "1,200", Expected: 1200},
		{Label: "WholeDecimal", Input: "3.0", Expected: 3},
		{Label: "Zero", Input: "0", Expected: 0},
		{Label: "Spaces", Input: " 42 ", Expected: 42},
		{Label: "EnglishWord", Input: "seven", Expected: 7},
		{Label: "SpanishWord", Input: "siete", Expected: 7},
		{Label: "Ten", Input: "Ten!", Expected: 10},
		{Label: "AtMax", Input: "10", Options: &Options{Min: ptr(1), Max: ptr(10)}, Expected: 10},
		{Label: "AtMin", Input: "one", Options: &Options{Min: ptr(1), Max: ptr(10)}, Expected: 1},
		{Label: "AboveMax", Input: "11", Options: &Options{Min: ptr(1), Max: ptr(10)}, ExpectedErr: "above the maximum of 10"},
		{Label: "WordBelowMin", Input: "five", Options: &Options{Min: ptr(6)}, ExpectedErr: "below the minimum of 6"},
		{Label: "Fraction", Input: "2.5", ExpectedErr: "not a whole number"},
		{Label: "SmallFraction", Input: "1.001", ExpectedErr: "not a whole number"},
		{Label: "BeyondExactFloat", Input: "9007199254740993", ExpectedErr: "too large"},
		{Label: "Huge", Input: "99999999999999999999", ExpectedErr: "too large"},
		{Label: "Words", Input: "three apples", ExpectedErr: "not a number"},
		{Label: "Slash", Input: "1/2", ExpectedErr: "not a number"},
		{Label: "VulgarFraction", Input: "½", ExpectedErr: "not a number"},
		{Label: "DecimalComma", Input: "1,2", ExpectedErr: "has a comma that is not a thousands separator"},
		{Label: "Empty", Input: "", ExpectedErr: "no answer given"},
	}},

	YesNo: {Options: &Options{}, Cases: []answerCase{
		{Label: "Yes", Input: "yes", Expected: true},
		{Label: "YesShouted", Input: "YES!!", Expected: true},
		{Label: "Y", Input: "y", Expected: true},
		{Label: "Yeah", Input: "Yeah", Expected: true},
		{Label: "Yep", Input: "yep.", Expected: true},
		{Label: "Yup", Input: "yup", Expected: true},
		{Label: "Sure", Input: "Sure", Expected: true},
		{Label: "Ok", Input: "ok", Expected: true},
		{Label: "Okay", Input: "Okay.", Expected: true},
		{Label: "One", Input: "1", Expected: true},
		{Label: "SiAccent", Input: "Sí", Expected: true},
		{Label: "Si", Input: "si", Expected: true},
		{Label: "Claro", Input: "¡Claro!", Expected: true},
		{Label: "Correct", Input: "correct", Expected: true},
		{Label: "True", Input: "TRUE", Expected: true},
		{Label: "Stretched", Input: "yesss", Expected: true},
		{Label: "YesPlease", Input: "Yes, please", Expected: true},
		{Label: "ThumbsUp", Input: "👍", Expected: true},
		{Label: "ThumbsUpSkinTone", Input: "👍🏽", Expected: true},
		{Label: "CheckMark", Input: "✅", Expected: true},
		{Label: "YesWithThumb", Input: "yes 👍", Expected: true},
		{Label: "No", Input: "no", Expected: false},
		{Label: "NoDot", Input: "No.", Expected: false},
		{Label: "N", Input: "N", Expected: false},
		{Label: "Nope", Input: "nope", Expected: false},
		{Label: "Nah", Input: "nah", Expected: false},
		{Label: "Two", Input: "2", Expected: false},
		{Label: "False", Input: "false", Expected: false},
		{Label: "NotReally", Input: "Not really", Expected: false},
		{Label: "StretchedNo", Input: "nooo", Expected: false},
		{Label: "NoThanks", Input: "No, thanks", Expected: false},
		{Label: "ThumbsDown", Input: "👎", Expected: false},
		{Label: "CrossMark", Input: "❌", Expected: false},
		{Label: "Maybe", Input: "maybe", ExpectedErr: "not a yes or no"},
		{Label: "DontKnow", Input: "I don't know", ExpectedErr: "not a yes or no"},
		{Label: "YesAndNo", Input: "yes no", ExpectedErr: "not a yes or no"},
		{Label: "TwentyTwoIsNotTwo", Input: "22", ExpectedErr: "not a yes or no"},
		{Label: "Three", Input: "3", ExpectedErr: "not a yes or no"},
		{Label: "OtherEmoji", Input: "🙂", ExpectedErr: "not a yes or no"},
		{Label: "BothThumbs", Input: "👍👎", ExpectedErr: "both yes and no"},
		{Label: "YesThumbDown", Input: "yes 👎", ExpectedErr: "both yes and no"},
		{Label: "Empty", Input: " ", ExpectedErr: "no answer given"},
	}},

	Choice: {Options: &Options{Choices: weekdays}, Cases: []answerCase{
		{Label: "Number", Input: "1", Expected: "mon"},
		{Label: "NumberDot", Input: "2.", Expected: "tue"},
		{Label: "NumberHash", Input: "#3", Expected: "wed"},
		{Label: "NumberParens", Input: "(4)", Expected: "any"},
		{Label: "Label", Input: "Monday", Expected: "mon"},
		{Label: "LabelPunctuation", Input: "monday!", Expected: "mon"},
		{Label: "LabelUpperCase", Input: "TUESDAY", Expected: "tue"},
		{Label: "Value", Input: "tue", Expected: "tue"},
		{Label: "Synonym", Input: "weds", Expected: "wed"},
		{Label: "SynonymWithoutAccent", Input: "miercoles", Expected: "wed"},
		{Label: "SynonymWithAccent", Input: "Miércoles", Expected: "wed"},
		{Label: "SynonymDecomposedAccent", Input: "Mie\u0301rcoles", Expected: "wed"},
		{Label: "SpanishSynonym", Input: "lunes", Expected: "mon"},
		{Label: "TwoWords", Input: "any day", Expected: "any"},
		{Label: "PunctuationBetweenWords", Input: "Any-day", Expected: "any"},
		{Label: "NumberOutOfRange", Input: "5", ExpectedErr: "not one of the choices"},
		{Label: "NumberZero", Input: "0", ExpectedErr: "not one of the choices"},
		{Label: "TwoNumbers", Input: "1 2", ExpectedErr: "not one of the choices"},
		{Label: "Decimal", Input: "2.5", ExpectedErr: "not one of the choices"},
		{Label: "OtherDay", Input: "Thursday", ExpectedErr: "not one of the choices"},
		{Label: "TwoDays", Input: "mon or tue", ExpectedErr: "not one of the choices"},
		{Label: "OnlyPunctuation", Input: "?!", ExpectedErr: "not one of the choices"},
		{Label: "Empty", Input: "", ExpectedErr: "no answer given"},
		{Label: "SharedSynonym", Input: "early", Options: &Options{Choices: []Option{
			{Value: "am", Label: "Morning", Synonyms: []string{"early"}},
			{Value: "pm", Label: "Early afternoon", Synonyms: []string{"early"}},
		}}, ExpectedErr: "matches more than one choice"},
		{Label: "NumberAndValueDisagree", Input: "2", Options: &Options{Choices: []Option{
			{Value: "2", Label: "Two people"},
			{Value: "1", Label: "One person"},
		}}, ExpectedErr: "matches more than one choice"},
		{Label: "NumberAndValueAgree", Input: "2", Options: &Options{Choices: []Option{
			{Value: "1", Label: "One"},
			{Value: "2", Label: "Two"},
		}}, Expected: "2"},
		{Label: "NoChoices", Input: "1", Options: &Options{}, ExpectedErr: "the question has no choices"},
	}},

	Date: {Options: &Options{Now: testNow}, Cases: []answerCase{
		{Label: "Today", Input: "today", Expected: day(2026, 11, 29)},
		{Label: "Tomorrow", Input: "Tomorrow", Expected: day(2026, 11, 30)},
		{Label: "Yesterday", Input: "yesterday", Expected: day(2026, 11, 28)},
		{Label: "TomorrowAbbreviated", Input: "tmrw", Expected: day(2026, 11, 30)},
		{Label: "TomorrowAtTime", Input: "tomorrow at 3pm", Expected: day(2026, 11, 30)},
		{Label: "TomorrowMorning", Input: "tomorrow morning", Expected: day(2026, 11, 30)},
		{Label: "Hoy", Input: "hoy", Expected: day(2026, 11, 29)},
		{Label: "Manana", Input: "Mañana", Expected: day(2026, 11, 30)},
		{Label: "PasadoManana", Input: "pasado mañana", Expected: day(2026, 12, 1)},
		{Label: "DayAfterTomorrow", Input: "the day after tomorrow", Expected: day(2026, 12, 1)},
		{Label: "Weekday", Input: "Tuesday", Expected: day(2026, 12, 1)},
		{Label: "WeekdayAbbreviated", Input: "Tue.", Expected: day(2026, 12, 1)},
		{Label: "NextWeekday", Input: "next Tuesday", Expected: day(2026, 12, 1)},
		{Label: "OnWeekday", Input: "on Friday", Expected: day(2026, 12, 4)},
		{Label: "BareTodayWeekdayIsNextWeek", Input: "Sunday", Expected: day(2026, 12, 6)},
		{Label: "ThisTodayWeekdayIsToday", Input: "this Sunday", Expected: day(2026, 11, 29)},
		{Label: "LastWeekday", Input: "last Tuesday", Expected: day(2026, 11, 24)},
		{Label: "ThisPastWeekday", Input: "this past Friday", Expected: day(2026, 11, 27)},
		{Label: "WeekdayAfternoon", Input: "Friday afternoon", Expected: day(2026, 12, 4)},
		{Label: "SpanishNextWeekday", Input: "el próximo martes", Expected: day(2026, 12, 1)},
		{Label: "SpanishLastWeekday", Input: "el lunes pasado", Expected: day(2026, 11, 23)},
		{Label: "MonthDay", Input: "3/14", Expected: day(2027, 3, 14)},
		{Label: "MonthDayYear", Input: "3/14/2027", Expected: day(2027, 3, 14)},
		{Label: "MonthDayShortYear", Input: "3/14/27", Expected: day(2027, 3, 14)},
		{Label: "BirthDateShortYear", Input: "5/6/85", Expected: day(1985, 5, 6)},
		{Label: "DashedDate", Input: "12-25-2026", Expected: day(2026, 12, 25)},
		{Label: "NoYearLaterThisYear", Input: "12/25", Expected: day(2026, 12, 25)},
		{Label: "NoYearTodayIsToday", Input: "11/29", Expected: day(2026, 11, 29)},
		{Label: "NoYearPassedIsNextYear", Input: "11/28", Expected: day(2027, 11, 28)},
		{Label: "NoYearLeapDay", Input: "2/29", Expected: day(2028, 2, 29)},
		{Label: "DayMonthOrder", Input: "14/3", Options: &Options{Now: testNow, DateOrder: DMY}, Expected: day(2027, 3, 14)},
		{Label: "DayMonthOrderSmall", Input: "3/4", Options: &Options{Now: testNow, DateOrder: DMY}, Expected: day(2027, 4, 3)},
		{Label: "DayMonthDots", Input: "14.3.2027", Options: &Options{Now: testNow, DateOrder: DMY}, Expected: day(2027, 3, 14)},
		{Label: "ISO", Input: "2027-03-14", Expected: day(2027, 3, 14)},
		{Label: "ISOInDayMonthOrder", Input: "2027-03-14", Options: &Options{Now: testNow, DateOrder: DMY}, Expected: day(2027, 3, 14)},
		{Label: "MonthName", Input: "March 14", Expected: day(2027, 3, 14)},
		{Label: "DayMonthNameYear", Input: "14 March 2027", Expected: day(2027, 3, 14)},
		{Label: "MonthNameOrdinalYear", Input: "March 14th, 2027", Expected: day(2027, 3, 14)},
		{Label: "OrdinalOfMonth", Input: "the 3rd of March", Expected: day(2027, 3, 3)},
		{Label: "AbbreviatedMonth", Input: "Dec 25", Expected: day(2026, 12, 25)},
		{Label: "SpanishMonth", Input: "14 de marzo", Expected: day(2027, 3, 14)},
		{Label: "SpanishMonthYear", Input: "3 de diciembre de 2026", Expected: day(2026, 12, 3)},
		{Label: "WeekdayAndDate", Input: "martes 1 de diciembre", Expected: day(2026, 12, 1)},
		{Label: "WeekdayAndNumericDate", Input: "Tue 12/1", Expected: day(2026, 12, 1)},
		{Label: "OrdinalDayOnly", Input: "the 14th", Expected: day(2026, 12, 14)},
		{Label: "InDays", Input: "in 3 days", Expected: day(2026, 12, 2)},
		{Label: "WeeksAgo", Input: "2 weeks ago", Expected: day(2026, 11, 15)},
		{Label: "InAMonth", Input: "in a month", Expected: day(2026, 12, 29)},
		{Label: "SpanishInWeeks", Input: "en 2 semanas", Expected: day(2026, 12, 13)},
		{Label: "SpanishDaysAgo", Input: "hace 3 días", Expected: day(2026, 11, 26)},
		{Label: "InWordWeeks", Input: "in three weeks", Expected: day(2026, 12, 20)},
		{Label: "SpanishYearsAgo", Input: "hace dos años", Expected: day(2024, 11, 29)},
		{Label: "WithinDaysViaWhen", Input: "within 3 days", Expected: day(2026, 12, 2)},
		{Label: "OrdinalThirtyFirst", Input: "the 31st", Expected: day(2026, 12, 31)},
		{Label: "SpanishFirstOfMonth", Input: "primero de enero", Expected: day(2027, 1, 1)},
		{Label: "NoSuchOrdinalDate", Input: "the 30th of February", ExpectedErr: "not a valid date"},
		{Label: "DayBeyondMonth", Input: "March 32", ExpectedErr: "not a date"},
		{Label: "ThreeDigitYear", Input: "3/14/123", ExpectedErr: "not a valid date"},
		{Label: "ISOWithoutDay", Input: "2027-03", ExpectedErr: "no day given"},
		{Label: "TwoWeekdays", Input: "Monday Tuesday", ExpectedErr: "not a date"},
		{Label: "ContradictoryWeekday", Input: "next last Friday", ExpectedErr: "not a date"},
		{Label: "TwoMonths", Input: "March April", ExpectedErr: "not a date"},
		{Label: "MonthDayInMonthDayOrder", Input: "14/3", ExpectedErr: "not a valid date in month/day order"},
		{Label: "DayMonthInDayMonthOrder", Input: "3/14", Options: &Options{Now: testNow, DateOrder: DMY}, ExpectedErr: "not a valid date in day/month order"},
		{Label: "NoSuchDay", Input: "2/30", ExpectedErr: "not a valid date"},
		{Label: "NoSuchISODay", Input: "2027-02-30", ExpectedErr: "not a valid date"},
		{Label: "NoSuchMonth", Input: "13/45/2026", ExpectedErr: "not a valid date"},
		{Label: "WeekdayDisagrees", Input: "Wednesday 12/1", ExpectedErr: "the weekday does not match the date"},
		{Label: "MonthOnly", Input: "March", ExpectedErr: "no day given"},
		{Label: "MonthAndYear", Input: "March 2027", ExpectedErr: "no day given"},
		{Label: "NextWeek", Input: "next week", ExpectedErr: "too vague for a date"},
		{Label: "FewDays", Input: "in a few days", ExpectedErr: "too vague for a date"},
		{Label: "Negated", Input: "not tomorrow", ExpectedErr: "not a date"},
		{Label: "Vague", Input: "someday", ExpectedErr: "not a date"},
		{Label: "Morning", Input: "morning", ExpectedErr: "not a date"},
		{Label: "BareNumber", Input: "42", ExpectedErr: "not a date"},
		{Label: "TimeOnly", Input: "3pm", ExpectedErr: "not a date"},
		{Label: "TooOld", Input: "1850-01-01", ExpectedErr: "the year is out of range"},
		{Label: "TooFar", Input: "3/14/2300", ExpectedErr: "the year is out of range"},
		{Label: "Empty", Input: "", ExpectedErr: "no answer given"},
	}},

	Time: {Options: &Options{}, Cases: []answerCase{
		{Label: "Pm", Input: "3pm", Expected: "15:00"},
		{Label: "PmSpaced", Input: "3 PM", Expected: "15:00"},
		{Label: "MinutesPm", Input: "3:30 PM", Expected: "15:30"},
		{Label: "MinutesPmDots", Input: "3.30 p.m.", Expected: "15:30"},
		{Label: "MinutesAm", Input: "7:45 a.m.", Expected: "07:45"},
		{Label: "TwentyFourHour", Input: "15:30", Expected: "15:30"},
		{Label: "ZeroPadded", Input: "09:30", Expected: "09:30"},
		{Label: "Military", Input: "1530", Expected: "15:30"},
		{Label: "CompactPm", Input: "330pm", Expected: "15:30"},
		{Label: "HourH", Input: "15h30", Expected: "15:30"},
		{Label: "Noon", Input: "noon", Expected: "12:00"},
		{Label: "Midnight", Input: "Midnight", Expected: "00:00"},
		{Label: "TwelveAm", Input: "12am", Expected: "00:00"},
		{Label: "TwelvePm", Input: "12pm", Expected: "12:00"},
		{Label: "TwelveThirty", Input: "12:30", Expected: "12:30"},
		{Label: "At", Input: "at 10am", Expected: "10:00"},
		{Label: "InTheMorning", Input: "10 in the morning", Expected: "10:00"},
		{Label: "OClockPm", Input: "8 o'clock pm", Expected: "20:00"},
		{Label: "SpanishAfternoon", Input: "a las 3 de la tarde", Expected: "15:00"},
		{Label: "SpanishNoon", Input: "mediodía", Expected: "12:00"},
		{Label: "PartOfDay", Input: "morning", ExpectedErr: "not a time"},
		{Label: "Word", Input: "soon", ExpectedErr: "not a time"},
		{Label: "BareHour", Input: "3", ExpectedErr: "needs am or pm"},
		{Label: "AmbiguousMinutes", Input: "9:30", ExpectedErr: "needs am or pm"},
		{Label: "OClock", Input: "8 o'clock", ExpectedErr: "needs am or pm"},
		{Label: "BareAfternoonHour", Input: "15", ExpectedErr: "needs minutes"},
		{Label: "PmTooBig", Input: "13pm", ExpectedErr: "not a time"},
		{Label: "ZeroPm", Input: "0pm", ExpectedErr: "not a time"},
		{Label: "BadMinutes", Input: "3:75pm", ExpectedErr: "not a time"},
		{Label: "BadHour", Input: "25:00", ExpectedErr: "not a time"},
		{Label: "Seconds", Input: "3:30:00", ExpectedErr: "not a time"},
		{Label: "Empty", Input: "", ExpectedErr: "no answer given"},
	}},

	Phone: {Options: &Options{Region: "US"}, Cases: []answerCase{
		{Label: "Parens", Input: "(202) 555-0123", Expected: "+12025550123"},
		{Label: "Dashes", Input: "202-555-0123", Expected: "+12025550123"},
		{Label: "Digits", Input: "2025550123", Expected: "+12025550123"},
		{Label: "Dots", Input: "202.555.0123", Expected: "+12025550123"},
		{Label: "CountryCode", Input: "+1 202 555 0123", Expected: "+12025550123"},
		{Label: "TrunkOne", Input: "1-202-555-0123", Expected: "+12025550123"},
		{Label: "TelURI", Input: "tel:+12025550123", Expected: "+12025550123"},
		{Label: "Spaces", Input: "  415 555 2671 ", Expected: "+14155552671"},
		{Label: "UK", Input: "+44 20 7946 0958", Expected: "+442079460958"},
		{Label: "Spain", Input: "+34 612 345 678", Expected: "+34612345678"},
		{Label: "MexicoRegion", Input: "55 1234 5678", Options: &Options{Region: "MX"}, Expected: "+525512345678"},
		{Label: "LowerCaseRegion", Input: "020 7946 0958", Options: &Options{Region: "gb"}, Expected: "+442079460958"},
		{Label: "DefaultRegionIsUS", Input: "(212) 555-1234", Options: &Options{}, Expected: "+12125551234"},
		{Label: "SevenDigits", Input: "555-0123", ExpectedErr: "not a valid phone number"},
		{Label: "FiveDigits", Input: "12345", ExpectedErr: "not a valid phone number"},
		{Label: "TooManyDigits", Input: "+1 202 555 01234", ExpectedErr: "not a valid phone number"},
		{Label: "Zeros", Input: "000-000-0000", ExpectedErr: "not a valid phone number"},
		{Label: "Words", Input: "call me", ExpectedErr: "not a phone number"},
		{Label: "Extension", Input: "202-555-0123 ext 5", ExpectedErr: "not a phone number"},
		{Label: "TwoNumbers", Input: "202-555-0123 or 202-555-0456", ExpectedErr: "not a phone number"},
		{Label: "Sentence", Input: "my cell is 2025550123", ExpectedErr: "not a phone number"},
		{Label: "OnlyPunctuation", Input: "(-)", ExpectedErr: "not a phone number"},
		{Label: "Empty", Input: "", ExpectedErr: "no answer given"},
	}},

	Email: {Options: &Options{}, Cases: []answerCase{
		{Label: "Plain", Input: "ana@example.com", Expected: "ana@example.com"},
		{Label: "LowerCasesDomain", Input: "Ana@Example.COM", Expected: "Ana@example.com"},
		{Label: "KeepsLocalCase", Input: "ANA@EXAMPLE.COM", Expected: "ANA@example.com"},
		{Label: "PlusAndDots", Input: "ana.maria+clinic@mail.example.org", Expected: "ana.maria+clinic@mail.example.org"},
		{Label: "Spaces", Input: "  ana@example.com ", Expected: "ana@example.com"},
		{Label: "Mailto", Input: "mailto:ana@example.com", Expected: "ana@example.com"},
		{Label: "SentenceDot", Input: "ana@example.com.", Expected: "ana@example.com"},
		{Label: "NonASCIILocal", Input: "josé@example.com", Expected: "josé@example.com"},
		{Label: "HyphenDomain", Input: "ana@my-clinic.example", Expected: "ana@my-clinic.example"},
		{Label: "NoAt", Input: "ana", ExpectedErr: "not an email address"},
		{Label: "NoLocal", Input: "@example.com", ExpectedErr: "not an email address"},
		{Label: "TwoAts", Input: "ana@@example.com", ExpectedErr: "not an email address"},
		{Label: "DisplayName", Input: "Ana <ana@example.com>", ExpectedErr: "not an email address"},
		{Label: "SpaceInside", Input: "ana @example.com", ExpectedErr: "not an email address"},
		{Label: "EmptyLabel", Input: "ana@example..com", ExpectedErr: "not an email address"},
		{Label: "NoDotInDomain", Input: "ana@localhost", ExpectedErr: "the domain is not valid"},
		{Label: "NoTLD", Input: "ana@example", ExpectedErr: "the domain is not valid"},
		{Label: "HyphenLabel", Input: "ana@-example.com", ExpectedErr: "the domain is not valid"},
		{Label: "Underscore", Input: "ana@exa_mple.com", ExpectedErr: "the domain is not valid"},
		{Label: "IPLiteral", Input: "ana@[192.168.0.1]", ExpectedErr: "the domain is not valid"},
		{Label: "Sentence", Input: "it is ana@example.com", ExpectedErr: "not an email address"},
		{Label: "Empty", Input: "", ExpectedErr: "no answer given"},
	}},

	Zip: {Options: &Options{}, Cases: []answerCase{
		{Label: "Five", Input: "12345", Expected: "12345"},
		{Label: "LeadingZero", Input: " 02134 ", Expected: "02134"},
		{Label: "BeverlyHills", Input: "90210", Expected: "90210"},
		{Label: "PlusFour", Input: "12345-6789", Expected: "12345-6789"},
		{Label: "PlusFourSpace", Input: "12345 6789", Expected: "12345-6789"},
		{Label: "NineDigits", Input: "123456789", Expected: "12345-6789"},
		{Label: "Four", Input: "1234", ExpectedErr: "not a ZIP code"},
		{Label: "Six", Input: "123456", ExpectedErr: "not a ZIP code"},
		{Label: "Ten", Input: "1234567890", ExpectedErr: "not a ZIP code"},
		{Label: "TrailingDash", Input: "12345-", ExpectedErr: "not a ZIP code"},
		{Label: "ShortPlusFour", Input: "12345-678", ExpectedErr: "not a ZIP code"},
		{Label: "DoubleDash", Input: "12345--6789", ExpectedErr: "not a ZIP code"},
		{Label: "ExtraPart", Input: "12345-6789-1", ExpectedErr: "not a ZIP code"},
		{Label: "Letters", Input: "ABCDE", ExpectedErr: "not a ZIP code"},
		{Label: "CanadianPostcode", Input: "K1A 0B1", ExpectedErr: "not a ZIP code"},
		{Label: "SpaceInside", Input: "12 345", ExpectedErr: "not a ZIP code"},
		{Label: "LeadingDash", Input: "-12345", ExpectedErr: "not a ZIP code"},
		{Label: "FullWidthDigit", Input: "1234５", ExpectedErr: "not a ZIP code"},
		{Label: "Sentence", Input: "zip 12345", ExpectedErr: "not a ZIP code"},
		{Label: "AllZeros", Input: "00000", ExpectedErr: "not a valid ZIP code"},
		{Label: "Empty", Input: "", ExpectedErr: "no answer given"},
	}},

	Pattern: {Options: &Options{Pattern: regexp.MustCompile(`[A-Z]{2}\d{6}`)}, Cases: []answerCase{
		{Label: "MemberID", Input: "AB123456", Expected: "AB123456"},
		{Label: "Trimmed", Input: " AB123456 \n", Expected: "AB123456"},
		{Label: "OtherLetters", Input: "ZZ000000", Expected: "ZZ000000"},
		{Label: "LowerCase", Input: "ab123456", ExpectedErr: "does not match the expected format"},
		{Label: "TooLong", Input: "AB1234567", ExpectedErr: "does not match the expected format"},
		{Label: "PrefixBefore", Input: "XAB123456", ExpectedErr: "does not match the expected format"},
		{Label: "InSentence", Input: "my id is AB123456", ExpectedErr: "does not match the expected format"},
		{Label: "TooShort", Input: "AB12345", ExpectedErr: "does not match the expected format"},
		{Label: "SpaceInside", Input: "AB 123456", ExpectedErr: "does not match the expected format"},
		{Label: "Empty", Input: "", ExpectedErr: "no answer given"},
		{Label: "OnlySpaces", Input: "   ", ExpectedErr: "no answer given"},
		{Label: "NoPattern", Input: "AB123456", Options: &Options{}, ExpectedErr: "the question has no pattern"},
		{Label: "NilOptions", Input: "AB123456", Options: nil, ExpectedErr: "the question has no pattern"},
		// Leftmost-first matching finds "a" in "ab"; the answer still matches.
		{Label: "AlternationLongerBranch", Input: "ab", Options: &Options{Pattern: regexp.MustCompile(`a|ab`)}, Expected: "ab"},
		{Label: "AlternationNeither", Input: "abc", Options: &Options{Pattern: regexp.MustCompile(`a|ab`)}, ExpectedErr: "does not match the expected format"},
		// (?m) must not let one line of the answer stand for all of it.
		{Label: "MultilineFlag", Input: "123\nabc", Options: &Options{Pattern: regexp.MustCompile(`(?m)^\d+$`)}, ExpectedErr: "does not match the expected format"},
		{Label: "MultilineFlagWhole", Input: "123", Options: &Options{Pattern: regexp.MustCompile(`(?m)^\d+$`)}, Expected: "123"},
		{Label: "CaseInsensitive", Input: "mrn-0042", Options: &Options{Pattern: regexp.MustCompile(`(?i)MRN-\d{4}`)}, Expected: "mrn-0042"},
		{Label: "AnchoredPattern", Input: "12345", Options: &Options{Pattern: regexp.MustCompile(`^\d{5}$`)}, Expected: "12345"},
		{Label: "OptionalPart", Input: "12345", Options: &Options{Pattern: regexp.MustCompile(`\d{5}(-\d{4})?`)}, Expected: "12345"},
		{Label: "OptionalPartPresent", Input: "12345-6789", Options: &Options{Pattern: regexp.MustCompile(`\d{5}(-\d{4})?`)}, Expected: "12345-6789"},
	}},
}

// nilOptionCases are the labels whose nil Options field is meant: those
// cases test nil options instead of falling back to the table's.
var nilOptionCases = map[string]bool{"NilOptions": true}

func caseOptions(kind string, c answerCase) *Options {
	if c.Options != nil || nilOptionCases[c.Label] {
		return c.Options
	}
	return tables[kind].Options
}

// TestEveryKindHasTable is driven by the registry: a new kind fails here
// until it has a table of real answers, wrong ones included.
func TestEveryKindHasTable(t *testing.T) {
	kinds := Kinds()
	for _, kind := range kinds {
		table, ok := tables[kind]
		if !ok {
			t.Errorf("kind %q has no table of answers", kind)
			continue
		}
		if len(table.Cases) < 20 {
			t.Errorf("kind %q has %d answers; want at least 20", kind, len(table.Cases))
		}
		var good, bad int
		for _, c := range table.Cases {
			if c.ExpectedErr == "" {
				good++
			} else {
				bad++
			}
		}
		if good == 0 || bad == 0 {
			t.Errorf("kind %q has %d accepted and %d refused answers; want both", kind, good, bad)
		}
	}
	for kind := range tables {
		if !slices.Contains(kinds, kind) {
			t.Errorf("table for %q, which is not registered", kind)
		}
	}
}

func TestParse(t *testing.T) {
	for _, kind := range Kinds() {
		t.Run(kind, func(t *testing.T) {
			seen := map[string]bool{}
			for _, c := range tables[kind].Cases {
				if seen[c.Label] {
					t.Fatalf("label %q used twice", c.Label)
				}
				seen[c.Label] = true
				t.Run(c.Label, func(t *testing.T) {
					got, err := Parse(kind, c.Input, caseOptions(kind, c))
					checkResult(t, kind, c, got, err)
				})
			}
		})
	}
}

func checkResult(t *testing.T, kind string, c answerCase, got any, err error) {
	t.Helper()
	if c.ExpectedErr != "" {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Parse(%q) = %v, %v; want *Error %q", c.Input, got, err, c.ExpectedErr)
		}
		if e.Kind != kind || e.Reason != c.ExpectedErr {
			t.Errorf("Parse(%q) error = {%q, %q}; want {%q, %q}", c.Input, e.Kind, e.Reason, kind, c.ExpectedErr)
		}
		if got != nil {
			t.Errorf("Parse(%q) value = %v alongside an error; want nil", c.Input, got)
		}
		if !knownReasons[e.Reason] {
			t.Errorf("reason %q is not in knownReasons", e.Reason)
		}
		return
	}
	if err != nil {
		t.Fatalf("Parse(%q) error = %v; want %v", c.Input, err, c.Expected)
	}
	if want, ok := c.Expected.(time.Time); ok {
		tm, ok := got.(time.Time)
		if !ok || !tm.Equal(want) || tm.Location() != want.Location() {
			t.Errorf("Parse(%q) = %v; want %v", c.Input, got, want)
		}
		return
	}
	if got != c.Expected {
		t.Errorf("Parse(%q) = %#v (%T); want %#v (%T)", c.Input, got, got, c.Expected, c.Expected)
	}
}

// knownReasons is every reason a parser may give. The fuzz test checks that
// no input makes one outside this set, which is how it proves that no
// patient text ever ends up in a reason.
var knownReasons = map[string]bool{
	"no answer given": true, "unknown answer type": true, "could not be read": true,
	"shorter than the minimum of 2 characters": true, "longer than the maximum of 20 characters": true,
	"not a number": true, "too large": true, "not a whole number": true,
	"has a comma that is not a thousands separator": true,
	"below the minimum of 0":                        true, "below the minimum of 0.5": true, "below the minimum of 6": true,
	"above the maximum of 120": true, "above the maximum of 10": true,
	"not a yes or no": true, "both yes and no": true,
	"not one of the choices": true, "matches more than one choice": true, "the question has no choices": true,
	"not a date": true, "not a valid date": true, "no day given": true, "too vague for a date": true,
	"not a valid date in month/day order": true, "not a valid date in day/month order": true,
	"the weekday does not match the date": true, "the year is out of range": true,
	"not a time": true, "needs am or pm": true, "needs minutes": true,
	"not a phone number": true, "not a valid phone number": true,
	"not an email address": true, "the domain is not valid": true,
	"not a ZIP code": true, "not a valid ZIP code": true,
	"does not match the expected format": true, "the question has no pattern": true,
}

func TestParseUnknownKind(t *testing.T) {
	_, err := Parse("colour", "red", nil)
	var e *Error
	if !errors.As(err, &e) || e.Kind != "colour" || e.Reason != "unknown answer type" {
		t.Fatalf("Parse(unknown kind) error = %v; want *Error unknown answer type", err)
	}
	if got, want := err.Error(), "colour answer: unknown answer type"; got != want {
		t.Errorf("Error() = %q; want %q", got, want)
	}
}

// Every parser must accept nil options, as Parse may be handed them.
func TestParseNilOptions(t *testing.T) {
	for _, kind := range Kinds() {
		p, _ := Lookup(kind)
		for _, c := range tables[kind].Cases {
			_, _ = p(c.Input, nil) // must not panic
		}
	}
	got, err := Parse(Date, "2027-03-14", nil)
	if err != nil || got.(time.Time).Location() != time.Local {
		t.Errorf("Parse(date, nil options) = %v, %v; want a date in the local zone", got, err)
	}
}

// A date is midnight in the clinic's zone, even across a daylight saving
// change and when the clock is near midnight.
func TestDateAcrossDaylightSaving(t *testing.T) {
	for _, c := range []struct {
		Label    string
		Now      time.Time
		Input    string
		Expected time.Time
	}{
		{"TomorrowBeforeFallBack", time.Date(2026, 10, 31, 23, 30, 0, 0, newYork), "tomorrow", day(2026, 11, 1)},
		{"TomorrowOnFallBackDay", time.Date(2026, 11, 1, 0, 30, 0, 0, newYork), "tomorrow", day(2026, 11, 2)},
		{"WhenOnFallBackDay", time.Date(2026, 11, 1, 0, 30, 0, 0, newYork), "within 1 day", day(2026, 11, 2)},
		{"WeekdayOverSpringForward", time.Date(2026, 3, 7, 23, 59, 0, 0, newYork), "next Monday", day(2026, 3, 9)},
		{"NowInOtherZone", time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC).In(mustZone("America/Los_Angeles")), "today", time.Date(2026, 11, 29, 0, 0, 0, 0, mustZone("America/Los_Angeles"))},
		{"MonthEndClamp", time.Date(2027, 1, 31, 9, 0, 0, 0, newYork), "in 1 month", day(2027, 2, 28)},
		{"MonthAcrossYear", time.Date(2026, 11, 29, 9, 0, 0, 0, newYork), "in 2 months", day(2027, 1, 29)},
	} {
		t.Run(c.Label, func(t *testing.T) {
			got, err := Parse(Date, c.Input, &Options{Now: c.Now})
			if err != nil {
				t.Fatal(err)
			}
			tm := got.(time.Time)
			if !tm.Equal(c.Expected) || tm.Hour() != 0 || tm.Location().String() != c.Expected.Location().String() {
				t.Errorf("Parse(%q) = %v; want %v", c.Input, tm, c.Expected)
			}
		})
	}
}

func TestRegisterPanics(t *testing.T) {
	for _, c := range []struct {
		Label string
		Kind  string
		P     Parser
	}{
		{"Duplicate", Date, parseDate},
		{"EmptyKind", "", parseDate},
		{"NilParser", "colour", nil},
	} {
		t.Run(c.Label, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", c.Kind)
				}
			}()
			Register(c.Kind, c.P)
		})
	}
	if _, ok := Lookup("colour"); ok {
		t.Error("a refused registration left a parser behind")
	}
}

func TestDateOrderString(t *testing.T) {
	if MDY.String() != "MDY" || DMY.String() != "DMY" {
		t.Errorf("DateOrder strings = %q, %q", MDY, DMY)
	}
}

func TestKindsSorted(t *testing.T) {
	want := []string{Choice, Date, Email, Integer, Number, Pattern, Phone, Text, Time, YesNo, Zip}
	if got := Kinds(); !slices.Equal(got, want) {
		t.Errorf("Kinds() = %v; want %v", got, want)
	}
	k := Kinds()
	k[0] = "changed"
	if Kinds()[0] != Choice {
		t.Error("Kinds() returned the registry's own slice")
	}
}

// A parser that panics is a bug, but it must cost one answer, not the
// engine: Parse turns the panic into an *Error.
func TestParseRecoversPanic(t *testing.T) {
	const kind = "test_panics"
	registry.Lock()
	registry.parsers[kind] = func(string, *Options) (any, error) { panic("boom") }
	registry.Unlock()
	t.Cleanup(func() {
		registry.Lock()
		delete(registry.parsers, kind)
		registry.Unlock()
	})
	v, err := Parse(kind, "x", nil)
	var e *Error
	if v != nil || !errors.As(err, &e) || e.Reason != "could not be read" {
		t.Errorf("Parse(panicking kind) = %v, %v; want *Error could not be read", v, err)
	}
}

// Parsers share package state (maps, the when parser, the pattern cache);
// run them concurrently so `go test -race` can see it stays read-only.
func TestParseConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for _, kind := range Kinds() {
				for _, c := range tables[kind].Cases {
					got, err := Parse(kind, c.Input, caseOptions(kind, c))
					if (err != nil) != (c.ExpectedErr != "") {
						t.Errorf("%s/%s: got %v, %v", kind, c.Label, got, err)
					}
				}
			}
		})
	}
	wg.Wait()
}

// The anchored copy of a pattern is cached per pattern; once a reloaded flow
// drops its pattern, the cache must let go of it too.
func TestAnchoredCacheReleasesPattern(t *testing.T) {
	re := regexp.MustCompile(`a|ab`)
	if _, err := Parse(Pattern, "ab", &Options{Pattern: re}); err != nil {
		t.Fatal(err)
	}
	key := weak.Make(re)
	if _, ok := anchoredCache.Load(key); !ok {
		t.Fatal("the anchored pattern was not cached")
	}
	re = nil
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		if _, ok := anchoredCache.Load(key); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache still holds a pattern nothing else uses")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRenderChoices(t *testing.T) {
	three := []Option{{Value: "mon", Label: "Monday"}, {Value: "tue", Label: "Tuesday"}, {Value: "wed", Label: "Wednesday"}}
	tres := []Option{{Value: "mon", Label: "Lunes"}, {Value: "tue", Label: "Martes"}, {Value: "wed", Label: "Miércoles"}}
	var eight []Option
	for _, v := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		eight = append(eight, Option{Value: v})
	}
	for _, c := range []struct {
		Label    string
		Opts     []Option
		Lang     string
		Expected string
	}{
		{"English", three, "en", "Reply 1 for Monday, 2 for Tuesday or 3 for Wednesday."},
		{"Spanish", tres, "es", "Responda 1 para Lunes, 2 para Martes o 3 para Miércoles."},
		{"SpanishRegion", tres, "es-MX", "Responda 1 para Lunes, 2 para Martes o 3 para Miércoles."},
		{"UnknownLanguageIsEnglish", three, "fr", "Reply 1 for Monday, 2 for Tuesday or 3 for Wednesday."},
		{"NoLanguageIsEnglish", three, "", "Reply 1 for Monday, 2 for Tuesday or 3 for Wednesday."},
		{"EnglishNotPrefix", three, "estonian", "Reply 1 for Monday, 2 for Tuesday or 3 for Wednesday."},
		{"One", three[:1], "en", "Reply 1 for Monday."},
		{"Two", []Option{{Value: "y", Label: "Yes"}, {Value: "n", Label: "No"}}, "en", "Reply 1 for Yes or 2 for No."},
		{"TwoSpanish", []Option{{Value: "y", Label: "Sí"}, {Value: "n", Label: "No"}}, "es", "Responda 1 para Sí o 2 para No."},
		{"ValueWhenNoLabel", []Option{{Value: "morning"}, {Value: "afternoon"}}, "en", "Reply 1 for morning or 2 for afternoon."},
		{"SpanishUBeforeEight", eight, "es", "Responda 1 para a, 2 para b, 3 para c, 4 para d, 5 para e, 6 para f, 7 para g u 8 para h."},
		{"EnglishEight", eight, "en", "Reply 1 for a, 2 for b, 3 for c, 4 for d, 5 for e, 6 for f, 7 for g or 8 for h."},
		{"NoDoubleStop", []Option{{Value: "x", Label: "Other?"}}, "en", "Reply 1 for Other?"},
		{"None", nil, "en", ""},
	} {
		t.Run(c.Label, func(t *testing.T) {
			if got := RenderChoices(c.Opts, c.Lang); got != c.Expected {
				t.Errorf("RenderChoices() = %q; want %q", got, c.Expected)
			}
		})
	}
}

// The rendered numbers are the ones parseChoice reads back.
func TestRenderedNumbersParse(t *testing.T) {
	o := &Options{Choices: weekdays}
	for i, opt := range weekdays {
		n := string(rune('1' + i))
		if !strings.Contains(RenderChoices(weekdays, "en"), n+" for "+opt.Label) {
			t.Fatalf("rendering lacks %q", n+" for "+opt.Label)
		}
		if got, err := Parse(Choice, n, o); err != nil || got != opt.Value {
			t.Errorf("Parse(choice, %q) = %v, %v; want %q", n, got, err, opt.Value)
		}
	}
}

func TestFold(t *testing.T) {
	for _, c := range []struct{ Input, Expected string }{
		{"Sí!", "si"},
		{"  Mañana  por la   TARDE ", "manana por la tarde"},
		{"Mie\u0301rcoles", "miercoles"},
		{"don't", "don t"},
		{"👍 yes 👍", "yes"},
		{"already folded", "already folded"},
		{"", ""},
		{"?!", ""},
	} {
		if got := fold(c.Input, ""); got != c.Expected {
			t.Errorf("fold(%q) = %q; want %q", c.Input, got, c.Expected)
		}
	}
	if got := fold("3/14, 2027", "/"); got != "3/14 2027" {
		t.Errorf("fold keeping / = %q", got)
	}
	if foldEqual("", "") || foldEqual("?", "!") {
		t.Error("foldEqual matched two answers with nothing in them")
	}
}

// FuzzParse feeds every kind arbitrary text. No input may panic, every
// refusal is an *Error of the right kind with a known reason (so no patient
// text leaks into it), and every value has its kind's type.
func FuzzParse(f *testing.F) {
	kinds := Kinds()
	for i, kind := range kinds {
		for _, c := range tables[kind].Cases {
			f.Add(uint8(i), c.Input)
		}
	}
	f.Fuzz(func(t *testing.T, k uint8, text string) {
		kind := kinds[int(k)%len(kinds)]
		p, _ := Lookup(kind)
		// Called directly, not through Parse, whose recover would hide a panic.
		v, err := p(text, tables[kind].Options)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Kind != kind || !knownReasons[e.Reason] {
				t.Fatalf("%s: error %#v is not an *Error with a known reason", kind, err)
			}
			if v != nil {
				t.Fatalf("%s: value %v alongside an error", kind, v)
			}
			return
		}
		switch kind {
		case Number:
			_, ok := v.(float64)
			checkType(t, kind, v, ok)
		case Integer:
			_, ok := v.(int)
			checkType(t, kind, v, ok)
		case YesNo:
			_, ok := v.(bool)
			checkType(t, kind, v, ok)
		case Date:
			tm, ok := v.(time.Time)
			checkType(t, kind, v, ok && tm.Location() == newYork && tm.Hour() == 0 && tm.Minute() == 0)
		case Time:
			s, ok := v.(string)
			checkType(t, kind, v, ok && len(s) == 5 && s[2] == ':' && s < "24:00")
		case Phone:
			s, ok := v.(string)
			checkType(t, kind, v, ok && strings.HasPrefix(s, "+"))
		case Text:
			s, ok := v.(string)
			checkType(t, kind, v, ok && utf8.ValidString(s) && !strings.ContainsRune(s, 0))
		default:
			_, ok := v.(string)
			checkType(t, kind, v, ok)
		}
	})
}

func checkType(t *testing.T, kind string, v any, ok bool) {
	t.Helper()
	if !ok {
		t.Fatalf("%s: unexpected value %#v", kind, v)
	}
}

// benchInputs are typical answers; each parser should take a few µs.
var benchInputs = map[string]string{
	Text:    "Ana María",
	Number:  "1,200.5",
	Integer: "42",
	YesNo:   "Yes!",
	Choice:  "Miércoles",
	Date:    "next Tuesday",
	Time:    "3:30 PM",
	Phone:   "(202) 555-0123",
	Email:   "Ana@Example.com",
	Zip:     "12345-6789",
	Pattern: "AB123456",
}

func BenchmarkParse(b *testing.B) {
	for _, kind := range Kinds() {
		in, ok := benchInputs[kind]
		if !ok {
			b.Fatalf("no benchmark input for %q", kind)
		}
		o := tables[kind].Options
		b.Run(kind, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(kind, in, o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The slowest date path: an English phrase only olebedev/when reads.
	b.Run("date_via_when", func(b *testing.B) {
		o := tables[Date].Options
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse(Date, "within 3 days", o); err != nil {
				b.Fatal(err)
			}
		}
	})
}
