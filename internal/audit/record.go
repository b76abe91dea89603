package audit

import (
	"time"

	"github.com/google/uuid"
)

// Values that Append fills into a Record when they are empty.
const (
	EventVersion  = "1.11"
	EventSource   = "kms.amazonaws.com"
	EventType     = "AwsApiCall"
	EventCategory = "Management"
	ResourceType  = "AWS::KMS::Key"
)

// Record is one audit event: one request kmsd received, whatever its
// outcome. Its JSON form is a CloudTrail event for KMS (same member names,
// same meanings) plus two chain members, sequence and prevHash, that the
// log fills in.
//
// A record must never hold plaintext, ciphertext, key material, data keys,
// signatures, MACs, passwords or secret access keys. The caller builds
// RequestParameters and ResponseElements from an allow-list of members per
// operation (as CloudTrail does: keyId, encryptionContext,
// encryptionAlgorithm, keySpec, numberOfBytes, …), never by copying the
// request. Never put a []byte in them: encoding/json would write it out in
// base64.
type Record struct {
	// Sequence numbers the records of a log 1, 2, 3, … without gaps.
	// Set by Append; any value the caller sets is ignored.
	Sequence uint64 `json:"sequence,omitempty"`
	// PrevHash is the lowercase hex SHA-256 of the previous record's line
	// as written (JSON and the terminating newline), or GenesisHash for
	// the first record of a log. Set by Append; ignored on input.
	PrevHash string `json:"prevHash,omitempty"`

	EventVersion    string       `json:"eventVersion"` // default EventVersion
	UserIdentity    UserIdentity `json:"userIdentity"`
	EventTime       time.Time    `json:"eventTime"`   // default now; written in UTC to the second, as CloudTrail
	EventSource     string       `json:"eventSource"` // default EventSource
	EventName       string       `json:"eventName"`   // the operation: "Encrypt", "CreateKey", …
	AWSRegion       string       `json:"awsRegion"`
	SourceIPAddress string       `json:"sourceIPAddress"`
	UserAgent       string       `json:"userAgent"`
	ErrorCode       string       `json:"errorCode,omitempty"`    // exception name, e.g. "AccessDeniedException"
	ErrorMessage    string       `json:"errorMessage,omitempty"` // its message
	// RequestParameters holds the non-secret request members (see above).
	// Nil is written as null.
	RequestParameters map[string]any `json:"requestParameters"`
	// ResponseElements holds non-secret response members; nil (written
	// as null) for the cryptographic operations, as CloudTrail does.
	ResponseElements map[string]any `json:"responseElements"`
	// AdditionalEventData carries extra facts such as keyMaterialId.
	AdditionalEventData map[string]any `json:"additionalEventData,omitempty"`
	RequestID           string         `json:"requestID"`
	EventID             string         `json:"eventID"` // default a random UUID
	ReadOnly            bool           `json:"readOnly"`
	Resources           []Resource     `json:"resources,omitempty"`
	EventType           string         `json:"eventType"` // default EventType
	ManagementEvent     bool           `json:"managementEvent"`
	RecipientAccountID  string         `json:"recipientAccountId"`
	EventCategory       string         `json:"eventCategory"` // default EventCategory
	TLSDetails          *TLSDetails    `json:"tlsDetails,omitempty"`
}

// UserIdentity is who made the request. For a request that was not
// authenticated, Type is "Unknown" and only what the request claimed
// (for instance AccessKeyID) is filled in.
type UserIdentity struct {
	Type        string `json:"type"` // "IAMUser", "AssumedRole", "Root", "AWSAccount", "Unknown"
	PrincipalID string `json:"principalId,omitempty"`
	ARN         string `json:"arn,omitempty"`
	AccountID   string `json:"accountId,omitempty"`
	AccessKeyID string `json:"accessKeyId,omitempty"`
	UserName    string `json:"userName,omitempty"`
	// SessionContext describes the session of temporary credentials
	// (type AssumedRole), as CloudTrail does; nil otherwise.
	SessionContext *SessionContext `json:"sessionContext,omitempty"`
}

// SessionContext is the session behind temporary credentials: the role
// that issued it and when.
type SessionContext struct {
	SessionIssuer SessionIssuer     `json:"sessionIssuer"`
	Attributes    SessionAttributes `json:"attributes"`
}

// SessionIssuer is the role a session was assumed from.
type SessionIssuer struct {
	Type        string `json:"type"`        // "Role"
	PrincipalID string `json:"principalId"` // the role's id (AROA…)
	ARN         string `json:"arn"`         // the role's ARN
	AccountID   string `json:"accountId"`
	UserName    string `json:"userName"` // the role's name
}

// SessionAttributes are facts about a session.
type SessionAttributes struct {
	CreationDate     time.Time `json:"creationDate"`
	MFAAuthenticated string    `json:"mfaAuthenticated"` // "false": kmsd has no MFA
}

// Resource is a KMS key the request concerned.
type Resource struct {
	ARN       string `json:"ARN"`
	AccountID string `json:"accountId"`
	Type      string `json:"type"` // default ResourceType
}

// TLSDetails describes the connection the request came on, when it was TLS.
type TLSDetails struct {
	TLSVersion               string `json:"tlsVersion"`  // "TLSv1.3"
	CipherSuite              string `json:"cipherSuite"` // "TLS_AES_128_GCM_SHA256"
	ClientProvidedHostHeader string `json:"clientProvidedHostHeader,omitempty"`
}

// fillDefaults sets the members that have fixed or generated values when
// the caller left them empty.
func (r *Record) fillDefaults(now time.Time) error {
	if r.EventVersion == "" {
		r.EventVersion = EventVersion
	}
	if r.EventTime.IsZero() {
		r.EventTime = now
	}
	// CloudTrail writes eventTime as "2006-01-02T15:04:05Z". A UTC time
	// without fraction marshals exactly so; Sequence gives the finer order.
	r.EventTime = r.EventTime.UTC().Truncate(time.Second)
	if r.EventSource == "" {
		r.EventSource = EventSource
	}
	if r.EventType == "" {
		r.EventType = EventType
	}
	if r.EventCategory == "" {
		r.EventCategory = EventCategory
	}
	r.ManagementEvent = true
	for i := range r.Resources {
		if r.Resources[i].Type == "" {
			r.Resources[i].Type = ResourceType
		}
	}
	if r.EventID == "" {
		id, err := uuid.NewRandom()
		if err != nil {
			return err
		}
		r.EventID = id.String()
	}
	return nil
}
