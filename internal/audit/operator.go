package audit

import (
	"os"
	"os/user"
)

// OperatorRecord returns the record of a command an operator ran on the
// machine (not a request: kmsd iam, kmsd root, kmsd audit accept-reset, a
// lost node log accepted): who ran it, where, with what parameters. Its
// parameters must hold no secret: they are written to the log as given.
func OperatorRecord(event, region string, params map[string]any) *Record {
	rec := &Record{
		EventName:         event,
		EventSource:       "kmsd",
		EventType:         "KmsdOperatorAction",
		AWSRegion:         region,
		UserIdentity:      UserIdentity{Type: "Operator"},
		RequestParameters: params,
	}
	if u, err := user.Current(); err == nil {
		rec.UserIdentity.UserName = u.Username
		rec.UserIdentity.PrincipalID = u.Uid
	}
	if h, err := os.Hostname(); err == nil {
		rec.UserAgent = "kmsd on " + h
	}
	return rec
}
