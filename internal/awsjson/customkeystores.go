package awsjson

import (
	"regexp"
	"unicode/utf8"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/kms"
)

// Custom key stores: model constraints and response shapes.

var (
	cloudHsmClusterIDRE = regexp.MustCompile(`^cluster-[2-7a-zA-Z]{11,16}$`)
	customKeyStoreTypes = []string{kms.CustomKeyStoreCloudHSM, kms.CustomKeyStoreExternal}
	xksConnectivities   = []string{"PUBLIC_ENDPOINT", "VPC_ENDPOINT_SERVICE"}
)

// password checks KeyStorePassword (len 7-32) without ever echoing it:
// it is the token's PIN.
func (v *validator) password(field, s string) {
	if s == "" {
		return
	}
	if n := utf8.RuneCountInString(s); n < 7 {
		v.vs = append(v.vs, awserr.Violation{Field: field, Sensitive: true, Constraint: "Member must have length greater than or equal to 7"})
	} else if n > 32 {
		v.vs = append(v.vs, awserr.Violation{Field: field, Sensitive: true, Constraint: "Member must have length less than or equal to 32"})
	}
}

func (v *validator) clusterID(field, s string) {
	if s != "" {
		v.length(field, s, 19, 24)
		v.pattern(field, s, cloudHsmClusterIDRE)
	}
}

func validateCreateCustomKeyStore(v *validator, in *kms.CreateCustomKeyStoreInput) {
	if v.required("customKeyStoreName", in.CustomKeyStoreName) {
		v.length("customKeyStoreName", in.CustomKeyStoreName, 1, 256)
	}
	v.clusterID("cloudHsmClusterId", in.CloudHsmClusterId)
	v.optLength("trustAnchorCertificate", in.TrustAnchorCertificate, 1, 5000)
	v.password("keyStorePassword", in.KeyStorePassword)
	v.enum("customKeyStoreType", in.CustomKeyStoreType, customKeyStoreTypes)
	v.enum("xksProxyConnectivity", in.XksProxyConnectivity, xksConnectivities)
}

func validateUpdateCustomKeyStore(v *validator, in *kms.UpdateCustomKeyStoreInput) {
	validateCKSID(v, in.CustomKeyStoreId)
	v.optLength("newCustomKeyStoreName", in.NewCustomKeyStoreName, 1, 256)
	v.clusterID("cloudHsmClusterId", in.CloudHsmClusterId)
	v.password("keyStorePassword", in.KeyStorePassword)
	v.enum("xksProxyConnectivity", in.XksProxyConnectivity, xksConnectivities)
}

func validateCKSID(v *validator, id string) {
	if v.required("customKeyStoreId", id) {
		v.length("customKeyStoreId", id, 1, 64)
	}
}

func validateCustomKeyStoreID(v *validator, in *kms.CustomKeyStoreIdInput) {
	validateCKSID(v, in.CustomKeyStoreId)
}

func validateDescribeCustomKeyStores(v *validator, in *kms.DescribeCustomKeyStoresInput) {
	v.optLength("customKeyStoreId", in.CustomKeyStoreId, 1, 64)
	v.optLength("customKeyStoreName", in.CustomKeyStoreName, 1, 256)
	v.list(in.Limit, in.Marker)
}

type customKeyStoresListEntry struct {
	CustomKeyStoreId       string
	CustomKeyStoreName     string
	CustomKeyStoreType     string
	CloudHsmClusterId      string
	TrustAnchorCertificate string
	ConnectionState        string
	ConnectionErrorCode    string `json:",omitempty"`
	CreationDate           epoch
}

type describeCustomKeyStoresResponse struct {
	CustomKeyStores []customKeyStoresListEntry
	NextMarker      string `json:",omitempty"`
	Truncated       bool
}

func wireDescribeCustomKeyStores(o *kms.DescribeCustomKeyStoresOutput) any {
	r := describeCustomKeyStoresResponse{CustomKeyStores: []customKeyStoresListEntry{}, NextMarker: o.NextMarker, Truncated: o.Truncated}
	for _, e := range o.CustomKeyStores {
		r.CustomKeyStores = append(r.CustomKeyStores, customKeyStoresListEntry{
			e.CustomKeyStoreId, e.CustomKeyStoreName, e.CustomKeyStoreType, e.CloudHsmClusterId,
			e.TrustAnchorCertificate, e.ConnectionState, e.ConnectionErrorCode, epoch(e.CreationDate),
		})
	}
	return r
}
