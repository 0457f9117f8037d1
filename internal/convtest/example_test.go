package convtest_test

import (
	"context"
	"fmt"
	"os"

	"github.com/safeflow/safeflow/internal/convtest"
)

// Example runs the conversation tests of a folder and prints the report, as
// `safeflow test -v testdata/clinic` does.
func Example() {
	suite, err := convtest.Load([]string{"testdata/clinic"})
	if err != nil {
		fmt.Println(err)
		return
	}
	report := suite.Run(context.Background(), convtest.Options{})
	report.WriteText(os.Stdout, convtest.TextOptions{Verbose: true})
	// Output:
	// ok   Monday with a note on the secure page (testdata/clinic/checkup.test.yaml:6)
	// ok   Tuesday on Messenger, tapping a quick reply (testdata/clinic/checkup.test.yaml:32)
	// ok   a reminder, then the timeout hands over (testdata/clinic/checkup.test.yaml:44)
	// ok   AGENT, then the agent hands back and the question is asked again (testdata/clinic/checkup.test.yaml:59)
	// coverage checkup: steps 5/5 (100%), branches 5/6 (83%)
	//   missed: branch ask-dob -> desk (on fail)
	// ok: 4 tests passed (1 file)
}
