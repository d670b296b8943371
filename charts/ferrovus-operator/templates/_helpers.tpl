{{/* Full name of the release's objects. */}}
{{- define "ferrovus-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ferrovus-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ferrovus-operator.labels" -}}
{{ include "ferrovus-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ferrovus
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ferrovus-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ferrovus-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Rules on the objects of MilvusClusters (ClusterRole or Role). */}}
{{- define "ferrovus-operator.rules" -}}
- apiGroups: ["ferrovus.io"]
  resources: ["milvusclusters"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["ferrovus.io"]
  resources: ["milvusclusters/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["ferrovus.io"]
  resources: ["milvusclusters/finalizers"]
  verbs: ["update"]
# child objects; delete: objects the spec no longer asks for (e.g. an HPA after
# autoscaling is removed, in-cluster etcd after a switch to an external one)
- apiGroups: ["apps"]
  resources: ["statefulsets", "deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["configmaps", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# S3 credentials: read the referenced Secret, generate/delete the in-cluster store's Secret
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "delete"]
# deletionPolicy: Delete
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["list", "delete"]
# Events on MilvusClusters (kubectl describe mc); patch: a repeated Event becomes a series
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# pod-level problems of workloads that are not ready: the pods' container
# statuses (image pulls, crash loops) and the FailedCreate events of StatefulSets
- apiGroups: [""]
  resources: ["pods", "events"]
  verbs: ["list"]
{{- end -}}
