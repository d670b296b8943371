//! Prints the `MilvusCluster` CRD as YAML:
//! `cargo run -p ferrovus-operator --bin crdgen > crds/milvusclusters.ferrovus.io.yaml`.

fn main() {
    print!("{}", ferrovus_operator::crd::crd_yaml());
}
