use super::*;

#[test]
fn xml_escapes_markup_and_drops_control_characters() {
    assert_eq!(
        xml("a<b & \"c\" 'd'>\n\u{1}"),
        "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;&#10;?"
    );
    assert_eq!(xml("clé — ok"), "clé — ok");
}

#[test]
fn the_markdown_list_has_a_table_per_area() {
    let text = list_markdown(&crate::catalog());
    assert!(text.contains("### SigV4 authentication (`sigv4`)"));
    assert!(text.contains("| `sigv4.skew-past-10min` | #25 | required |"));
}
