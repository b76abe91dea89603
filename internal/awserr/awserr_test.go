package awserr_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kmsd/kmsd/internal/awserr"
)

func ExampleInvalid() {
	err := awserr.Invalid(
		awserr.Violation{Field: "keyId", Value: "", Constraint: "Member must have length greater than or equal to 1"},
		awserr.Violation{Field: "plaintext", Sensitive: true, Constraint: "Member must have length less than or equal to 4096"},
	)
	fmt.Println(err.Code)
	fmt.Println(err.Message)
	// Output:
	// ValidationException
	// 2 validation errors detected: Value '' at 'keyId' failed to satisfy constraint: Member must have length greater than or equal to 1; Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096
}

func TestCodeAndStatus(t *testing.T) {
	err := fmt.Errorf("decrypt: %w", awserr.New(awserr.NotFound, "Key 'x' does not exist"))
	if awserr.CodeOf(err) != awserr.NotFound || !errors.Is(err, awserr.New(awserr.NotFound, "")) {
		t.Fatalf("wrapped code lost: %v", err)
	}
	if awserr.CodeOf(errors.New("plain")) != "" {
		t.Fatal("plain error has a code")
	}
	for code, status := range map[string]int{
		awserr.NotFound: 400, awserr.Validation: 400, awserr.Disabled: 400,
		awserr.KMSInternal: 500, awserr.DependencyTimeout: 503, awserr.DryRunOperation: 412,
	} {
		if got := awserr.HTTPStatus(code); got != status {
			t.Errorf("HTTPStatus(%s) = %d, want %d", code, got, status)
		}
	}
}
