use std::collections::HashSet;

use super::*;

#[test]
fn ids_are_unique_and_start_with_their_area() {
    let all = catalog();
    let mut seen = HashSet::new();
    for c in &all {
        assert!(seen.insert(c.id), "duplicate id {}", c.id);
        assert!(
            c.id.starts_with(&format!("{}.", c.area.name())),
            "{} is not in area {}",
            c.id,
            c.area.name()
        );
        assert!(!c.rows.is_empty() && !c.title.is_empty(), "{}", c.id);
    }
}

#[test]
fn every_checklist_row_has_a_check() {
    let covered: HashSet<u16> = catalog()
        .iter()
        .flat_map(|c| c.rows.iter().copied())
        .collect();
    let missing: Vec<u16> = (1..=130).filter(|r| !covered.contains(r)).collect();
    assert!(missing.is_empty(), "rows without a check: {missing:?}");
}

#[test]
fn areas_are_listed_in_report_order() {
    let all = catalog();
    let order: Vec<Area> = all.iter().map(|c| c.area).collect();
    let mut sorted = order.clone();
    sorted.sort_by_key(|a| Area::ALL.iter().position(|x| x == a));
    assert_eq!(order, sorted);
}

#[test]
fn filters_match_prefixes_areas_and_rows() {
    let all = catalog();
    let count = |filters: &[&str]| {
        let s = Selection::only(filters.iter().copied());
        all.iter().filter(|c| s.matches(c)).count()
    };
    assert_eq!(count(&[]), all.len());
    assert_eq!(count(&["sigv4.skew"]), 3);
    assert_eq!(count(&["tamper"]), 15);
    assert_eq!(count(&["74"]), 1);
    assert_eq!(count(&["#74", "#25"]), 2);
    assert_eq!(count(&["request-metadata"]), 13);
    let s = Selection::only(["nope", "sigv4"]);
    assert_eq!(s.unmatched(&all), ["nope"]);
}
